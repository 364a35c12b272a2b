using System.Net.Security;

namespace SecretlessProxy.Certificates;

/// <summary>
/// One user's hold on a leaf certificate from <see cref="LeafCertificateCache"/>: while any lease
/// is open the certificate is not disposed, even if the cache has evicted it. Dispose it once the
/// TLS session that presents the certificate is disposed.
/// </summary>
internal sealed class LeafCertificateLease : IDisposable
{
    private LeafCertificateCache.Entry? _entry;

    internal LeafCertificateLease(LeafCertificateCache.Entry entry)
    {
        _entry = entry;
        Context = entry.Context;
    }

    /// <summary>The leaf and the local CA, for <see cref="SslServerAuthenticationOptions.ServerCertificateContext"/>.</summary>
    public SslStreamCertificateContext Context { get; }

    /// <summary>Releases the hold; a second call does nothing.</summary>
    public void Dispose() => Interlocked.Exchange(ref _entry, null)?.Release();
}
