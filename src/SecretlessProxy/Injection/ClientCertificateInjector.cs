using SecretlessProxy.Core;

namespace SecretlessProxy.Injection;

/// <summary>
/// Presents a TLS client certificate to the upstream. Nothing goes into the request: the
/// certificate is chosen during the handshake of a connection from the policy's own upstream
/// client (<c>Forwarding/ClientCertificateClients</c>), so connections pooled for other policies
/// never carry it. The policy has no <c>Credential</c>: the certificate is the credential.
/// </summary>
internal sealed class ClientCertificateInjector : InjectionRule
{
    public ClientCertificateInjector(string certFile, string keyFile)
    {
        CertFile = certFile;
        KeyFile = keyFile;
        ClientKey = certFile + "\n" + keyFile;
    }

    /// <summary>Presents the certificate of a credential whose source yields <c>CredentialShape.Certificate</c>.</summary>
    public ClientCertificateInjector(string credentialName)
    {
        CredentialName = credentialName;
        ClientKey = "credential\n" + credentialName;
    }

    /// <summary>Full path of the PEM certificate (null for a credential's certificate).</summary>
    public string? CertFile { get; }

    /// <summary>Full path of the PEM private key (null for a credential's certificate).</summary>
    public string? KeyFile { get; }

    /// <summary>The credential whose source presents the certificate (null for files).</summary>
    public string? CredentialName { get; }

    /// <summary>Policies naming the same files (or credential) share one upstream client, across reloads too.</summary>
    public string ClientKey { get; }

    public override string Kind => "client-certificate";

    public override InjectionTarget Target => InjectionTarget.TlsClientCertificate;
}
