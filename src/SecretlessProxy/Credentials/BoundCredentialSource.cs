using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>One credential's source-specific keys, bound by its kind and not yet validated.</summary>
internal sealed class BoundCredentialSource
{
    private readonly Func<bool, CredentialShape> _yields;
    private readonly Func<CredentialSourceContext, ICredentialSource?> _compile;

    public BoundCredentialSource(ICredentialSourceKind kind, Func<bool, CredentialShape> yields, Func<CredentialSourceContext, ICredentialSource?> compile)
    {
        Kind = kind;
        _yields = yields;
        _compile = compile;
    }

    public ICredentialSourceKind Kind { get; }

    /// <summary>What the source yields with these settings (<see cref="CredentialSourceKind{TOptions}.Yields"/>).</summary>
    public CredentialShape Yields(bool hasUsername) => _yields(hasUsername);

    /// <summary>The server a value is minted for (<see cref="CredentialSourceKind{TOptions}.Audience"/>); null when it is not tied to one.</summary>
    public CredentialAudience? Audience { get; init; }

    /// <summary>Validates and builds (<see cref="CredentialSourceKind{TOptions}.Compile"/>).</summary>
    public ICredentialSource? Compile(CredentialSourceContext context) => _compile(context);
}
