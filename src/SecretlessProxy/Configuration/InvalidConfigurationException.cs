using SecretlessProxy.Core;

namespace SecretlessProxy.Configuration;

/// <summary>The configuration has problems; <see cref="Errors"/> lists each with its key path.</summary>
internal sealed class InvalidConfigurationException : Exception
{
    public InvalidConfigurationException(IReadOnlyList<ConfigError> errors)
        : base("The configuration is invalid:" + Environment.NewLine + string.Join(Environment.NewLine, errors.Select(e => "  " + e)))
    {
        Errors = errors;
    }

    public IReadOnlyList<ConfigError> Errors { get; }
}
