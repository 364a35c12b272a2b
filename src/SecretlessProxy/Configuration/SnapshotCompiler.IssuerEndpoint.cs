using SecretlessProxy.Core;

namespace SecretlessProxy.Configuration;

internal sealed partial class SnapshotCompiler
{
    private const string IssuerEndpointKeys = IssuerEndpointRules.Keys;

    // Every issuer endpoint of one Compile (credentials' and the identity's), for validate's warnings.
    private readonly List<IssuerEndpoint> _issuerEndpoints = [];

    /// <summary>Checks how an issuer URL is reached (<see cref="IssuerEndpointRules.Compile"/>) and records it.</summary>
    private IssuerEndpoint? CompileIssuerEndpoint(string key, string urlKey, Uri url, string? unixSocket, string[]? pins, bool? allowSquatting, string carries, List<ConfigError> errors)
    {
        var endpoint = IssuerEndpointRules.Compile(key, urlKey, url, unixSocket, pins, allowSquatting, carries, errors);
        if (endpoint is not null)
        {
            _issuerEndpoints.Add(endpoint);
        }

        return endpoint;
    }
}
