using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Certificates;

/// <summary>
/// Leaf certificates per intercepted host: short-lived, issued on first use, reissued once past
/// 80% of their lifetime, so a long-running proxy never presents an expired one.
/// </summary>
public sealed class LeafCertificateCache : IDisposable
{
    private readonly LocalCertificateAuthority _authority;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.OrdinalIgnoreCase);
    private readonly object _issueGate = new();

    public LeafCertificateCache(LocalCertificateAuthority authority, TimeProvider time, TimeSpan lifetime)
    {
        _authority = authority;
        _time = time;
        _lifetime = lifetime;
    }

    public LocalCertificateAuthority Authority => _authority;

    public SslStreamCertificateContext GetOrIssue(string host)
    {
        var now = _time.GetUtcNow();
        if (_entries.TryGetValue(host, out var entry) && now < entry.RenewAfter)
        {
            return entry.Context;
        }

        // One issuance at a time: a burst of first connections to a new host mints one leaf.
        lock (_issueGate)
        {
            if (_entries.TryGetValue(host, out entry) && now < entry.RenewAfter)
            {
                return entry.Context;
            }

            // Backdated a little for clients whose clocks run behind.
            var leaf = _authority.IssueLeaf(host, now.AddMinutes(-5), now + _lifetime);
            var context = SslStreamCertificateContext.Create(leaf, new X509Certificate2Collection(_authority.Certificate), offline: true);
            _entries[host] = new Entry(context, leaf, now + (_lifetime * 0.8));
            return context;
        }
    }

    public void Dispose()
    {
        foreach (var entry in _entries.Values)
        {
            entry.Leaf.Dispose();
        }

        _entries.Clear();
    }

    private sealed record Entry(SslStreamCertificateContext Context, X509Certificate2 Leaf, DateTimeOffset RenewAfter);
}
