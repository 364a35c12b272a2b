using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>A throwaway CA for test upstreams and clients, written as PEM where tools need files.</summary>
public sealed class TestPki : IDisposable
{
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public TestPki(string directory)
    {
        var request = new CertificateRequest("CN=Test Upstream CA " + Guid.NewGuid().ToString("N")[..8], _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        Ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        CaFile = Path.Combine(directory, "test-upstream-ca.pem");
        File.WriteAllText(CaFile, Ca.ExportCertificatePem());
    }

    public X509Certificate2 Ca { get; }

    public string CaFile { get; }

    /// <summary>A server certificate for localhost and 127.0.0.1.</summary>
    public X509Certificate2 IssueServer() => Issue("CN=localhost", server: true);

    /// <summary>A client certificate, written as PEM files for curl.</summary>
    public (X509Certificate2 Certificate, string CertFile, string KeyFile) IssueClient(string directory, string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var certificate = Issue(subject, server: false, key);
        var certFile = Path.Combine(directory, "client.pem");
        var keyFile = Path.Combine(directory, "client.key");
        File.WriteAllText(certFile, certificate.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        return (certificate, certFile, keyFile);
    }

    private X509Certificate2 Issue(string subject, bool server, ECDsa? key = null)
    {
        var ownKey = key is null;
        key ??= ECDsa.Create(ECCurve.NamedCurves.nistP256);
        try
        {
            var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
            if (server)
            {
                var san = new SubjectAlternativeNameBuilder();
                san.AddDnsName("localhost");
                san.AddIpAddress(IPAddress.Loopback);
                request.CertificateExtensions.Add(san.Build());
            }

            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
            using var signed = request.Create(Ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7), RandomNumberGenerator.GetBytes(12));
            using var withKey = signed.CopyWithPrivateKey(key);
            // Round-trip through PKCS#12 so SslStream on Linux gets a key it can use for the server side.
            return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        }
        finally
        {
            if (ownKey)
            {
                key.Dispose();
            }
        }
    }

    public void Dispose()
    {
        Ca.Dispose();
        _caKey.Dispose();
    }
}
