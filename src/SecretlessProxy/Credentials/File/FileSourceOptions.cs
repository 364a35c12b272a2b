namespace SecretlessProxy.Credentials;

/// <summary>The keys of a <c>File</c> credential (a mounted secret, such as a Kubernetes Secret volume).</summary>
internal sealed class FileSourceOptions : IIssuerEndpointOptions
{
    /// <summary>The file the secret is read from.</summary>
    public string? Path { get; set; }

    // Bound only to be refused: a file has no issuer to reach.
    public string? UnixSocket { get; set; }

    public string[]? PinnedCertificateSha256 { get; set; }

    public bool? AllowLoopbackSquatting { get; set; }
}
