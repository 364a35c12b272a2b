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
    }

    /// <summary>Full path of the PEM certificate.</summary>
    public string CertFile { get; }

    /// <summary>Full path of the PEM private key.</summary>
    public string KeyFile { get; }

    /// <summary>Policies naming the same files share one upstream client, across reloads too.</summary>
    public string ClientKey => CertFile + "\n" + KeyFile;

    public override string Kind => "client-certificate";

    public override InjectionTarget Target => InjectionTarget.TlsClientCertificate;
}
