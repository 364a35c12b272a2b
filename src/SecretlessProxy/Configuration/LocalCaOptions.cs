namespace SecretlessProxy.Configuration;

/// <summary>The CA that signs leaf certificates for intercepted HTTPS (Forward listeners).</summary>
internal sealed class LocalCaOptions
{
    /// <summary>Folder holding ca.crt and ca.key; both are created on first start when absent.</summary>
    public string? Directory { get; set; }

    /// <summary>A CA certificate (PEM) to load instead, for example from a Kubernetes Secret.</summary>
    public string? CertFile { get; set; }

    /// <summary>The CA's private key (PEM), with <see cref="CertFile"/>.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Lifetime of each leaf certificate. Default 24 hours.</summary>
    public TimeSpan? LeafLifetime { get; set; }

    /// <summary>How many leaf certificates are kept, least recently used evicted first. Default 1024.</summary>
    public int? MaxLeafCertificates { get; set; }
}
