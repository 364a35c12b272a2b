namespace SecretlessProxy.Cli.Webhook;

/// <summary>The <c>webhook</c> command's settings, from its flags (validated by <see cref="WebhookCommand"/>).</summary>
internal sealed record WebhookOptions
{
    /// <summary>4 MiB: above the API server's own 3 MiB request limit, so no real review is cut off.</summary>
    public const long DefaultMaxRequestBytes = 4 * 1024 * 1024;

    /// <summary>Where Kestrel listens (always TLS: the API server calls webhooks over HTTPS only).</summary>
    public required System.Net.IPEndPoint EndPoint { get; init; }

    /// <summary>PEM certificate (the leaf first, then any intermediates), as cert-manager writes <c>tls.crt</c>.</summary>
    public required string CertificateFile { get; init; }

    /// <summary>PEM private key, as cert-manager writes <c>tls.key</c>.</summary>
    public required string KeyFile { get; init; }

    public required SidecarSettings Sidecar { get; init; }

    public WebhookFailurePolicy FailurePolicy { get; init; } = WebhookFailurePolicy.Fail;

    public long MaxRequestBytes { get; init; } = DefaultMaxRequestBytes;
}
