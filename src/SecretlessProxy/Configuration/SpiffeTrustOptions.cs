namespace SecretlessProxy.Configuration;

/// <summary>One <c>Upstreams:SpiffeTrust</c> entry: hosts whose TLS certificate is an X.509-SVID.</summary>
internal sealed class SpiffeTrustOptions
{
    /// <summary>Upstream host names (as policies and listeners name them) verified this way.</summary>
    public string[]? Hosts { get; set; }

    /// <summary>The Workload API socket the X.509 bundles come from; default <c>SPIFFE_ENDPOINT_SOCKET</c>.</summary>
    public string? Socket { get; set; }

    /// <summary>SPIFFE IDs the upstream may present, exactly.</summary>
    public string[]? SpiffeIds { get; set; }

    /// <summary>SPIFFE ID prefixes, matched at a path segment boundary.</summary>
    public string[]? SpiffeIdPrefixes { get; set; }
}
