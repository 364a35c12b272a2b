namespace SecretlessProxy.Configuration;

/// <summary>
/// How the credential's issuer (TokenUrl, StsUrl, Address or AuthorityHost) is reached when it is
/// on this host, where the app could bind the port first. The same keys sit under Identity for
/// its JwksUrl or Issuer.
/// </summary>
public sealed partial class CredentialOptions
{
    /// <summary>Connect to this Unix socket instead of the URL's host and port (the URL still gives the path and Host).</summary>
    public string? UnixSocket { get; set; }

    /// <summary>SHA-256 fingerprints (hex, colons allowed) of the certificates the https issuer may present.</summary>
    public string[]? PinnedCertificateSha256 { get; set; }

    /// <summary>Reach a loopback issuer over plain TCP anyway, accepting that whoever binds the port first gets the request.</summary>
    public bool? AllowLoopbackSquatting { get; set; }
}
