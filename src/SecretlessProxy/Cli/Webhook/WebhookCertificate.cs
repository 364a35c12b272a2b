using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// The webhook's serving certificate, read from PEM files and re-read when they change. cert-manager
/// (or whoever bootstraps the Secret) rotates them in place: the kubelet swaps the Secret volume's
/// symlink, and the next TLS handshake presents the new pair with no restart. Each handshake stats
/// the two files (cheap, and the API server keeps its connections open); a pair that does not load
/// (a key that does not match yet) keeps the previous certificate serving and is tried again.
/// </summary>
internal sealed partial class WebhookCertificate : IDisposable
{
    private readonly string _certificateFile;
    private readonly string _keyFile;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private (FileStamp? Certificate, FileStamp? Key) _stamps;
    private (FileStamp? Certificate, FileStamp? Key) _failedStamps;
    private SslStreamCertificateContext _current;
    private X509Certificate2 _leaf;

    private WebhookCertificate(string certificateFile, string keyFile, ILogger logger, SslStreamCertificateContext current, X509Certificate2 leaf, (FileStamp?, FileStamp?) stamps)
    {
        _certificateFile = certificateFile;
        _keyFile = keyFile;
        _logger = logger;
        _current = current;
        _leaf = leaf;
        _stamps = stamps;
    }

    /// <summary>Loads the pair; throws (naming the file) when it cannot, so the command fails at start-up.</summary>
    public static WebhookCertificate Load(string certificateFile, string keyFile, ILogger logger)
    {
        var stamps = (FileStamp.Read(certificateFile), FileStamp.Read(keyFile));
        var (context, leaf) = Read(certificateFile, keyFile);
        Log.Loaded(logger, certificateFile, leaf.Subject, leaf.NotAfter.ToUniversalTime(), leaf.Thumbprint);
        return new WebhookCertificate(certificateFile, keyFile, logger, context, leaf, stamps);
    }

    /// <summary>The certificate for a new handshake: the files' current pair, or the last one that loaded.</summary>
    public SslStreamCertificateContext Current
    {
        get
        {
            var stamps = (FileStamp.Read(_certificateFile), FileStamp.Read(_keyFile));
            lock (_gate)
            {
                if (stamps == _stamps || stamps == _failedStamps || stamps.Item1 is null || stamps.Item2 is null)
                {
                    return _current;
                }

                try
                {
                    // The previous pair is not disposed: a handshake that took it a moment ago may
                    // still be signing with its key. Unreferenced once those finish, the GC frees it.
                    var (context, leaf) = Read(_certificateFile, _keyFile);
                    (_current, _leaf, _stamps, _failedStamps) = (context, leaf, stamps, default);
                    Log.Loaded(_logger, _certificateFile, leaf.Subject, leaf.NotAfter.ToUniversalTime(), leaf.Thumbprint);
                }
                catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
                {
                    // Not logged again until the files change once more.
                    _failedStamps = stamps;
                    Log.ReloadFailed(_logger, _certificateFile, _keyFile, ex.Message);
                }

                return _current;
            }
        }
    }

    private static (SslStreamCertificateContext Context, X509Certificate2 Leaf) Read(string certificateFile, string keyFile)
    {
        using var fromPem = X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
        // Through PKCS#12: on Linux, SslStream's server side needs a key it can hand to OpenSSL,
        // which the ephemeral key of a PEM import is not.
        var leaf = X509CertificateLoader.LoadPkcs12(fromPem.Export(X509ContentType.Pkcs12), null);
        try
        {
            // tls.crt may carry intermediates after the leaf: sent in the handshake, so the API
            // server can build the chain to the caBundle's root.
            var all = new X509Certificate2Collection();
            all.ImportFromPemFile(certificateFile);
            var intermediates = new X509Certificate2Collection();
            foreach (var certificate in all.Skip(1))
            {
                intermediates.Add(certificate);
            }

            return (SslStreamCertificateContext.Create(leaf, intermediates, offline: true), leaf);
        }
        catch
        {
            leaf.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _leaf.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.WebhookCertificateLoaded, LogLevel.Information, "Webhook certificate {CertificateFile} loaded: {Subject}, expires {NotAfter:o}, thumbprint {Thumbprint}")]
        public static partial void Loaded(ILogger logger, string certificateFile, string subject, DateTime notAfter, string thumbprint);

        [LoggerMessage(EventIds.WebhookCertificateReloadFailed, LogLevel.Warning, "Webhook certificate {CertificateFile} with key {KeyFile} changed but does not load ({Error}); the previous certificate keeps serving")]
        public static partial void ReloadFailed(ILogger logger, string certificateFile, string keyFile, string error);
    }
}
