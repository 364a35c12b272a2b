namespace SecretlessProxy.Configuration;

/// <summary>How the proxy verifies the upstreams it connects to over TLS.</summary>
internal sealed class UpstreamsOptions
{
    /// <summary>Extra CA certificates (PEM bundle) trusted in addition to the system store.</summary>
    public string? TrustedCaFile { get; set; }

    /// <summary>Upstream hosts in SPIFFE trust domains, verified by X.509 bundle and SPIFFE ID (by name).</summary>
    public Dictionary<string, SpiffeTrustOptions> SpiffeTrust { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}
