using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Credentials;

/// <summary>
/// A TLS client certificate read from a PEM certificate file and a PEM key file, re-read when
/// either changes (checked at most once a second: the final symlink target, mtime and length, so
/// a Kubernetes <c>..data</c> swap or an atomic rename is seen). A rotation that leaves the files
/// unusable for a moment (the certificate written before its key) keeps the last good
/// certificate while it is valid; an expired or never-loaded certificate is never presented.
/// </summary>
/// <remarks>
/// Replaced certificates are not disposed: a TLS handshake on another thread may still hold one,
/// and the finalizer releases it. Only the leaf (the first certificate in the file) is presented;
/// intermediates in the file are not sent, so the upstream must know them.
/// </remarks>
internal sealed partial class ClientCertificateFiles : IClientCertificate, IDisposable
{
    private const long MaxFileBytes = 1024 * 1024;
    private static readonly TimeSpan StatInterval = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _refreshing = new();
    private volatile Loaded? _current;
    private long _nextStat;
    private string? _lastFailure;
    private (FileStamp? Cert, FileStamp? Key) _failedStamps;

    public ClientCertificateFiles(string certFile, string keyFile, TimeProvider time, ILogger logger)
    {
        CertFile = certFile;
        KeyFile = keyFile;
        _time = time;
        _logger = logger;
    }

    public string CertFile { get; }

    public string KeyFile { get; }

    /// <summary>
    /// The certificate to present on a new connection, or false with a reason naming the files
    /// (never their content) when there is none that is valid now.
    /// </summary>
    public bool TryGetCurrent(out X509Certificate2? certificate, out string reason)
    {
        var timestamp = _time.GetTimestamp();
        if (timestamp >= Volatile.Read(ref _nextStat))
        {
            if (_current is null)
            {
                // Nothing to present yet: wait for the caller that is reading the files.
                lock (_refreshing)
                {
                    RefreshIfDue(timestamp);
                }
            }
            else if (_refreshing.TryEnter())
            {
                // One caller re-reads; the others go on with what is loaded.
                try
                {
                    RefreshIfDue(timestamp);
                }
                finally
                {
                    _refreshing.Exit();
                }
            }
        }

        var current = _current;
        var now = _time.GetUtcNow();
        if (current is null)
        {
            certificate = null;
            reason = "the client certificate could not be loaded: " + (Volatile.Read(ref _lastFailure) ?? "it is being read");
            return false;
        }

        if (now >= current.NotAfter || now < current.NotBefore)
        {
            certificate = null;
            reason = "the client certificate in '" + CertFile + "' (" + current.Certificate.Thumbprint + ") is valid from " + Format(current.NotBefore) + " to " + Format(current.NotAfter) + ", not now"
                + (Volatile.Read(ref _lastFailure) is { } failure ? "; its replacement could not be loaded: " + failure : string.Empty);
            return false;
        }

        certificate = current.Certificate;
        reason = string.Empty;
        return true;
    }

    private void RefreshIfDue(long timestamp)
    {
        if (timestamp < Volatile.Read(ref _nextStat))
        {
            return;
        }

        Volatile.Write(ref _nextStat, timestamp + (long)(StatInterval.TotalSeconds * _time.TimestampFrequency));
        Refresh();
    }

    private void Refresh()
    {
        var certStamp = FileStamp.Read(CertFile);
        var keyStamp = FileStamp.Read(KeyFile);
        var current = _current;
        if (current is not null && current.CertStamp == certStamp && current.KeyStamp == keyStamp)
        {
            return;
        }

        if (!TryLoad(CertFile, KeyFile, out var certificate, out var failedFile, out var error))
        {
            Volatile.Write(ref _lastFailure, error);
            if (_failedStamps != (certStamp, keyStamp))
            {
                _failedStamps = (certStamp, keyStamp);
                Log.ReloadFailed(_logger, CertFile, KeyFile, error!, current is null ? "none" : current.Certificate.Thumbprint);
            }

            return;
        }

        _current = new Loaded(certificate!, certStamp, keyStamp);
        Volatile.Write(ref _lastFailure, null);
        _failedStamps = default;
        Log.Loaded(_logger, CertFile, certificate!.Subject, certificate.Thumbprint, Format(new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero)));
    }

    /// <summary>
    /// Loads the first certificate of <paramref name="certFile"/> with the private key of
    /// <paramref name="keyFile"/>. On failure, <paramref name="failedFile"/> says which file is at
    /// fault (<c>CertFile</c>, <c>KeyFile</c>) and the message names the file, never its content.
    /// </summary>
    public static bool TryLoad(string certFile, string keyFile, out X509Certificate2? certificate, out string? failedFile, out string? error)
    {
        certificate = null;
        if (!TryRead(certFile, out var certPem, out error))
        {
            failedFile = "CertFile";
            return false;
        }

        if (!TryRead(keyFile, out var keyPem, out error))
        {
            failedFile = "KeyFile";
            return false;
        }

        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPem(certPem);
        }
        catch (CryptographicException)
        {
            failedFile = "CertFile";
            error = "file '" + certFile + "' does not contain a PEM certificate (-----BEGIN CERTIFICATE-----)";
            return false;
        }

        using (leaf)
        {
            AsymmetricAlgorithm key;
            switch (leaf.GetKeyAlgorithm())
            {
                case "1.2.840.113549.1.1.1":
                    key = RSA.Create();
                    break;
                case "1.2.840.10045.2.1":
                    key = ECDsa.Create();
                    break;
                default:
                    failedFile = "CertFile";
                    error = "the certificate in '" + certFile + "' has a key type the proxy cannot use (RSA or ECDSA)";
                    return false;
            }

            using (key)
            {
                failedFile = "KeyFile";
                try
                {
                    key.ImportFromPem(keyPem);
                }
                catch (Exception ex) when (ex is ArgumentException or CryptographicException)
                {
                    // No unencrypted key of the certificate's type in the file (the message would not
                    // show the content either, but this one names what to fix).
                    error = "file '" + keyFile + "' does not contain an unencrypted PEM private key of the certificate's type (" + (key is RSA ? "RSA" : "ECDSA") + ")";
                    return false;
                }

                X509Certificate2 withKey;
                try
                {
                    withKey = key is RSA rsa ? leaf.CopyWithPrivateKey(rsa) : leaf.CopyWithPrivateKey((ECDsa)key);
                }
                catch (Exception ex) when (ex is ArgumentException or CryptographicException)
                {
                    error = "the private key in '" + keyFile + "' does not match the certificate in '" + certFile + "'";
                    return false;
                }

                using (withKey)
                {
                    // Through PKCS#12 so the key is usable by SslStream on every platform.
                    certificate = X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
                }
            }

            failedFile = null;
            error = null;
            return true;
        }
    }

    private static bool TryRead(string path, out string text, out string? error)
    {
        text = string.Empty;
        try
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > MaxFileBytes)
            {
                error = "file '" + path + "' is larger than 1 MiB";
                return false;
            }

            text = File.ReadAllText(path);
            error = null;
            return true;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            error = "file '" + path + "' does not exist";
        }
        catch (UnauthorizedAccessException)
        {
            error = "file '" + path + "' is not readable by the proxy";
        }
        catch (IOException ex)
        {
            error = "file '" + path + "' could not be read (" + ex.GetType().Name + ")";
        }

        return false;
    }

    private static string Format(DateTimeOffset time) => time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    public void Dispose() => _current?.Certificate.Dispose();

    private sealed class Loaded
    {
        public Loaded(X509Certificate2 certificate, FileStamp? certStamp, FileStamp? keyStamp)
        {
            Certificate = certificate;
            CertStamp = certStamp;
            KeyStamp = keyStamp;
            NotBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime(), TimeSpan.Zero);
            NotAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);
        }

        public X509Certificate2 Certificate { get; }

        public FileStamp? CertStamp { get; }

        public FileStamp? KeyStamp { get; }

        public DateTimeOffset NotBefore { get; }

        public DateTimeOffset NotAfter { get; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.ClientCertificateLoaded, LogLevel.Information, "Loaded client certificate {CertFile}: {Subject}, thumbprint {Thumbprint}, expires {NotAfter}")]
        public static partial void Loaded(ILogger logger, string certFile, string subject, string thumbprint, string notAfter);

        [LoggerMessage(EventIds.ClientCertificateReloadFailed, LogLevel.Warning, "Reading client certificate {CertFile} with key {KeyFile} failed: {Reason}; still presenting {CurrentThumbprint} while it is valid")]
        public static partial void ReloadFailed(ILogger logger, string certFile, string keyFile, string reason, string currentThumbprint);
    }
}
