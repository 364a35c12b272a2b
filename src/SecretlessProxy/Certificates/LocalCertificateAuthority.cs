using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;

namespace SecretlessProxy.Certificates;

/// <summary>
/// The proxy's own CA, which signs a leaf certificate for each host whose HTTPS it intercepts.
/// Created on first start in its directory (a new directory 0700, the key file 0600: readable by
/// the proxy's user only) or
/// loaded from a mounted certificate and key. Its key never leaves the process or the directory.
/// </summary>
internal sealed class LocalCertificateAuthority : IDisposable
{
    public const string CertFileName = "ca.crt";
    public const string KeyFileName = "ca.key";

    private readonly X509Certificate2 _certificate;

    private LocalCertificateAuthority(X509Certificate2 certificate)
    {
        _certificate = certificate;
    }

    /// <summary>The CA certificate with its private key; for signing leaves only.</summary>
    internal X509Certificate2 Certificate => _certificate;

    /// <summary>The CA certificate in PEM, for trust bundles. Never includes the key.</summary>
    public string ExportCertificatePem() => _certificate.ExportCertificatePem();

    public DateTimeOffset NotAfter => new(_certificate.NotAfter.ToUniversalTime());

    /// <summary>The CA the configuration names: a mounted pair, or a directory created on first use.</summary>
    public static LocalCertificateAuthority FromSettings(LocalCaSettings settings, TimeProvider time) =>
        settings.Directory is { } directory ? LoadOrCreate(directory, time) : Load(settings.CertFile!, settings.KeyFile!);

    public static LocalCertificateAuthority Load(string certFile, string keyFile)
    {
        try
        {
            var certificate = X509Certificate2.CreateFromPemFile(certFile, keyFile);
            return new LocalCertificateAuthority(certificate);
        }
        catch (CryptographicException ex)
        {
            // The message of a PEM failure names the problem, not the key material.
            throw new InvalidOperationException("cannot load the local CA from '" + certFile + "' and '" + keyFile + "': " + ex.Message, ex);
        }
    }

    /// <summary>Loads <c>ca.crt</c>/<c>ca.key</c> from the directory, creating them on first use.</summary>
    public static LocalCertificateAuthority LoadOrCreate(string directory, TimeProvider time)
    {
        var certFile = Path.Combine(directory, CertFileName);
        var keyFile = Path.Combine(directory, KeyFileName);
        if (File.Exists(certFile) && File.Exists(keyFile))
        {
            return Load(certFile, keyFile);
        }

        // A new directory is the proxy's user's alone (0700): the key inside is 0600 as well, and
        // nobody else learns when it changes.
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=SecretlessProxy Local CA, O=SecretlessProxy", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var now = time.GetUtcNow();
        using var created = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(5));

        // The key is written with mode 0600 from the start: no window in which it is world-readable.
        var keyOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            keyOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var writer = new StreamWriter(keyFile, keyOptions))
        {
            writer.Write(key.ExportPkcs8PrivateKeyPem());
        }

        File.WriteAllText(certFile, created.ExportCertificatePem());
        return Load(certFile, keyFile);
    }

    /// <summary>Issues an ECDSA P-256 leaf for one host (DNS name or IP address) as its only SAN.</summary>
    /// <exception cref="ArgumentException"><paramref name="host"/> is neither a DNS name nor an IP literal.</exception>
    public X509Certificate2 IssueLeaf(string host, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        // The name comes from the app (a CONNECT target, an SNI). Built field by field, never as
        // "CN=" + host: in a distinguished-name string a ',' '=' ';' or '+' would start another
        // attribute (or make the string unparsable), and only a checked name gets this far at all.
        if (!HostName.TryNormalize(host, out var name))
        {
            throw new ArgumentException("the host is neither a DNS name nor an IP literal", nameof(host));
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var subject = new X500DistinguishedNameBuilder();
        // RFC 5280 appendix A.1: a common name holds at most 64 characters. A longer host is named by
        // the SAN alone, which section 4.2.1.6 then requires to be critical.
        var named = name.Length <= 64;
        if (named)
        {
            subject.AddCommonName(name);
        }

        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        if (name.Contains(':') || name.All(c => c is '.' or (>= '0' and <= '9')))
        {
            san.AddIpAddress(System.Net.IPAddress.Parse(name));
        }
        else
        {
            san.AddDnsName(name);
        }

        request.CertificateExtensions.Add(san.Build(critical: !named));
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));

        // A leaf must not outlive its issuer, or clients reject the chain.
        if (notAfter > NotAfter)
        {
            notAfter = NotAfter;
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var signed = request.Create(_certificate, notBefore, notAfter, serial);
        return signed.CopyWithPrivateKey(key);
    }

    public void Dispose() => _certificate.Dispose();
}
