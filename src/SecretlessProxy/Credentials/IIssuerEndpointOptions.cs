namespace SecretlessProxy.Credentials;

/// <summary>
/// How a credential's issuer (TokenUrl, StsUrl, Address or AuthorityHost) is reached when it is
/// on this host, where the app could bind the port first. Every kind binds these keys: those with
/// an issuer URL use them, the others refuse them by name.
/// </summary>
internal interface IIssuerEndpointOptions
{
    /// <summary>Connect to this Unix socket instead of the URL's host and port (the URL still gives the path and Host).</summary>
    string? UnixSocket { get; }

    /// <summary>SHA-256 fingerprints (hex, colons allowed) of the certificates the https issuer may present.</summary>
    string[]? PinnedCertificateSha256 { get; }

    /// <summary>Reach a loopback issuer over plain TCP anyway, accepting that whoever binds the port first gets the request.</summary>
    bool? AllowLoopbackSquatting { get; }
}
