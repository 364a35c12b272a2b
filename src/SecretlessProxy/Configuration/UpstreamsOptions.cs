namespace SecretlessProxy.Configuration;

/// <summary>How the proxy verifies the upstreams it connects to over TLS.</summary>
internal sealed class UpstreamsOptions
{
    /// <summary>Extra CA certificates (PEM bundle) trusted in addition to the system store.</summary>
    public string? TrustedCaFile { get; set; }
}
