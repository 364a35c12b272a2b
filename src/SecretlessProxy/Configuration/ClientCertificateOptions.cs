namespace SecretlessProxy.Configuration;

/// <summary>
/// A TLS client certificate presented to the upstream during the handshake, read from PEM files
/// (a SPIFFE X.509-SVID written by spiffe-helper, a cert-manager or Vault PKI secret) and re-read
/// when they rotate.
/// </summary>
internal sealed class ClientCertificateOptions
{
    /// <summary>PEM certificate; the first certificate in the file is the leaf that is presented.</summary>
    public string? CertFile { get; set; }

    /// <summary>PEM private key (PKCS#8, PKCS#1 or SEC1) matching the certificate.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Instead of the files: a credential whose source yields a certificate (<c>SpiffeX509Svid</c>).</summary>
    public string? Credential { get; set; }
}
