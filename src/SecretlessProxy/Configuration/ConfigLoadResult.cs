using SecretlessProxy.Core;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Configuration;

/// <summary>A loaded configuration: the snapshot when valid, otherwise every problem found.</summary>
internal sealed record ConfigLoadResult(ProxySnapshot? Snapshot, IReadOnlyList<ConfigError> Errors, Microsoft.Extensions.Configuration.IConfiguration Configuration)
{
    public bool IsValid => Snapshot is not null && Errors.Count == 0;
}
