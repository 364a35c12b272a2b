using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>One message of the FetchX509SVID stream, parsed: the chosen SVID and every bundle. Replaced whole on rotation.</summary>
internal sealed class X509SvidState
{
    public X509SvidState(SpiffeId id, X509Certificate2 certificate, X509Certificate2Collection intermediates, IReadOnlyDictionary<string, X509Certificate2Collection> bundles)
    {
        Id = id;
        Certificate = certificate;
        Intermediates = intermediates;
        Bundles = bundles;
        NotBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime(), TimeSpan.Zero);
        NotAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);
        _tlsContext = new Lazy<SslStreamCertificateContext>(() => SslStreamCertificateContext.Create(certificate, intermediates, offline: true));
    }

    private readonly Lazy<SslStreamCertificateContext> _tlsContext;

    public SpiffeId Id { get; }

    /// <summary>The leaf with its private key. Secret: never logged (its subject and thumbprint may be).</summary>
    public X509Certificate2 Certificate { get; }

    public X509Certificate2Collection Intermediates { get; }

    /// <summary>
    /// The leaf with the intermediates the agent sent, as a TLS client presents them: an upstream
    /// that trusts only the trust domain's root needs the chain (SPIRE under an intermediate CA).
    /// Built once per message, offline (every certificate came in the message).
    /// </summary>
    public SslStreamCertificateContext TlsContext => _tlsContext.Value;

    /// <summary>CA certificates by trust domain ID: the SVID's own domain and every federated one.</summary>
    public IReadOnlyDictionary<string, X509Certificate2Collection> Bundles { get; }

    public DateTimeOffset NotBefore { get; }

    public DateTimeOffset NotAfter { get; }
}
