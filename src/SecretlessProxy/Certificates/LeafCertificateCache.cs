using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Certificates;

/// <summary>
/// Leaf certificates per intercepted host: short-lived, issued on first use, reissued once past
/// 80% of their lifetime, so a long-running proxy never presents an expired one. At most
/// <c>LocalCa:MaxLeafCertificates</c> are kept, least recently used first out: under a wildcard
/// policy every new host name adds one (tens of KB with its key), and the app chooses the names.
/// </summary>
/// <remarks>
/// An evicted certificate may still be in use: a handshake choosing it right now, or a tunnel whose
/// SslStream holds it. Disposing it then would fail that handshake (or later reads of the
/// session's certificate), and never disposing it would leave its native key and certificate to
/// the finalizer, that is to whenever a GC runs. So every user takes a <see cref="LeafCertificateLease"/>,
/// a reference count on the entry that the cache itself also holds while the entry is cached; the
/// certificate is disposed when the last of them lets go. A lease is kept for the life of the
/// SslStream (not just the handshake) because the stream keeps the certificate as its
/// LocalCertificate, and tunnels are bounded by the listeners' MaxConnections, so what evicted
/// certificates are kept alive by is bounded too.
/// </remarks>
internal sealed class LeafCertificateCache : IDisposable
{
    public const int DefaultMaxCertificates = 1024;

    private readonly LocalCertificateAuthority _authority;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;
    private readonly int _maxCertificates;
    private readonly ProxyMetrics? _metrics;
    private readonly object _gate = new();

    // Under _gate. Most recently used first; the dictionary maps a normalised host to its node.
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _recency = new();

    // Under _gate. One issuance per host in flight: a burst of first connections to a new host mints
    // one leaf, while issuances for different hosts do not wait for each other.
    private readonly Dictionary<string, Lazy<Entry>> _issuing = new(StringComparer.Ordinal);
    private long _evictions;
    private bool _disposed;

    public LeafCertificateCache(LocalCertificateAuthority authority, TimeProvider time, TimeSpan lifetime, int maxCertificates = DefaultMaxCertificates, ProxyMetrics? metrics = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCertificates, 1);
        _authority = authority;
        _time = time;
        _lifetime = lifetime;
        _maxCertificates = maxCertificates;
        _metrics = metrics;
    }

    public LocalCertificateAuthority Authority => _authority;

    public int MaxCertificates => _maxCertificates;

    /// <summary>How many leaves are cached now (evicted ones still leased are not counted).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>How many leaves were evicted to stay within <see cref="MaxCertificates"/>.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>
    /// The leaf for <paramref name="host"/> (a DNS name or IP literal), issued when absent or due for
    /// renewal. The caller disposes the lease when the TLS session that presents it is disposed.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="host"/> is neither a DNS name nor an IP literal.</exception>
    public LeafCertificateLease Rent(string host)
    {
        // Callers check names where they arrive; this keeps any name that slipped past from
        // becoming a certificate, or a cache key, at all.
        if (!HostName.TryNormalize(host, out var name))
        {
            throw new ArgumentException("the host is neither a DNS name nor an IP literal", nameof(host));
        }

        while (true)
        {
            var now = _time.GetUtcNow();
            Lazy<Entry> issuing;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_entries.TryGetValue(name, out var node) && now < node.Value.RenewAfter && node.Value.TryAddReference())
                {
                    _recency.Remove(node);
                    _recency.AddFirst(node);
                    return new LeafCertificateLease(node.Value);
                }

                if (_issuing.TryGetValue(name, out var inFlight))
                {
                    issuing = inFlight;
                }
                else
                {
                    issuing = new Lazy<Entry>(() => Issue(name, now), LazyThreadSafetyMode.ExecutionAndPublication);
                    _issuing[name] = issuing;
                }
            }

            Entry issued;
            try
            {
                // Outside the lock: signing takes a moment, and other hosts' hits must not wait for it.
                issued = issuing.Value;
            }
            catch
            {
                lock (_gate)
                {
                    if (_issuing.TryGetValue(name, out var pending) && ReferenceEquals(pending, issuing))
                    {
                        _issuing.Remove(name);
                    }
                }

                throw;
            }

            lock (_gate)
            {
                // The first waiter back caches it; the others find it cached (or find it already evicted).
                if (_issuing.TryGetValue(name, out var pending) && ReferenceEquals(pending, issuing))
                {
                    _issuing.Remove(name);
                    if (_disposed)
                    {
                        issued.Release();
                        ObjectDisposedException.ThrowIf(_disposed, this);
                    }

                    Insert(issued);
                }

                if (issued.TryAddReference())
                {
                    return new LeafCertificateLease(issued);
                }
            }

            // Issued, cached and evicted again by a flood of other hosts before this waiter took its
            // reference: go round again (a new leaf) rather than hand out a disposed certificate.
        }
    }

    private Entry Issue(string host, DateTimeOffset now)
    {
        // Backdated a little for clients whose clocks run behind.
        var leaf = _authority.IssueLeaf(host, now.AddMinutes(-5), now + _lifetime);
        var context = SslStreamCertificateContext.Create(leaf, new X509Certificate2Collection(_authority.Certificate), offline: true);
        return new Entry(host, context, leaf, now + (_lifetime * 0.8));
    }

    /// <summary>Caches <paramref name="entry"/>, replacing an older leaf for its host and evicting the least recently used beyond the bound. Under <see cref="_gate"/>.</summary>
    private void Insert(Entry entry)
    {
        if (_entries.Remove(entry.Host, out var replaced))
        {
            // Renewed: the old leaf goes once the tunnels presenting it close.
            _recency.Remove(replaced);
            replaced.Value.Release();
            _metrics?.LeafCertificateRemoved("renewed");
        }

        _entries[entry.Host] = _recency.AddFirst(entry);
        while (_entries.Count > _maxCertificates && _recency.Last is { } oldest)
        {
            _recency.RemoveLast();
            _entries.Remove(oldest.Value.Host);
            oldest.Value.Release();
            Interlocked.Increment(ref _evictions);
            _metrics?.LeafCertificateRemoved("evicted");
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var entry in _recency)
            {
                entry.Release();
            }

            _recency.Clear();
            _entries.Clear();
        }
    }

    /// <summary>A cached leaf and its reference count: one for the cache while cached, one per open lease.</summary>
    internal sealed class Entry(string host, SslStreamCertificateContext context, X509Certificate2 leaf, DateTimeOffset renewAfter)
    {
        private int _references = 1;

        public string Host { get; } = host;

        public SslStreamCertificateContext Context { get; } = context;

        public DateTimeOffset RenewAfter { get; } = renewAfter;

        /// <summary>False once the count has reached zero: the certificate is disposed and must not be handed out.</summary>
        public bool TryAddReference()
        {
            while (true)
            {
                var current = Volatile.Read(ref _references);
                if (current == 0)
                {
                    return false;
                }

                if (Interlocked.CompareExchange(ref _references, current + 1, current) == current)
                {
                    return true;
                }
            }
        }

        public void Release()
        {
            if (Interlocked.Decrement(ref _references) == 0)
            {
                leaf.Dispose();
            }
        }
    }
}
