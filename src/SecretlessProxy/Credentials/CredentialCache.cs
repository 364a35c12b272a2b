using System.Collections.Frozen;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Credentials;

/// <summary>
/// Hands out current, unexpired credentials by name: refreshes ahead of expiry, one fetch at a time
/// per credential, backs off after failures, and never returns an expired value. Refresh points are
/// jittered and a cold value's first one is spread (<see cref="RefreshSchedule"/>), and a configured
/// prefetch is spread over its window, so that thousands of sidecars started together do not hit
/// the issuer together; the random draws come from one injectable <see cref="Random"/>, seedable.
/// </summary>
internal sealed class CredentialCache : IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _applying = new();
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ProxyMetrics? _metrics;
    private readonly Random _random;
    private volatile FrozenDictionary<string, CredentialEntry> _entries;
    private int _disposed;
    private int _released;

    /// <param name="random">
    /// Seeds each entry's own generator (refresh points, prefetch instants, backoff jitter); a seeded
    /// one reproduces a schedule (tests, bench/fleet). Default <see cref="Random.Shared"/>.
    /// </param>
    public CredentialCache(IEnumerable<CredentialDefinition> definitions, TimeProvider time, ILoggerFactory loggerFactory, ProxyMetrics? metrics = null, Random? random = null)
    {
        _time = time;
        _metrics = metrics;
        _random = random ?? Random.Shared;
        _logger = loggerFactory.CreateLogger<CredentialCache>();
        _entries = definitions.ToFrozenDictionary(d => d.Name, NewEntry, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Schedules the prefetch of every entry that has not scheduled one yet (<see cref="CredentialDefinition.PrefetchWithin"/>).
    /// Called by the owner once what the sources need is in place (credential references bound, the
    /// workload identity set), at start and after each <see cref="Apply"/>: a prefetch drawn near zero
    /// would otherwise fetch before then, fail into backoff, or mint with the previous identity.
    /// </summary>
    public void SchedulePrefetches()
    {
        foreach (var entry in _entries.Values)
        {
            entry.SchedulePrefetch();
        }
    }

    /// <summary>
    /// Takes a reloaded configuration's credentials: an unchanged definition keeps its cached value;
    /// a changed or removed one is dropped, so the next request fetches with the new definition (a
    /// changed token URL or client must never be served a value minted under the old one).
    /// Returns the names whose cached value was dropped.
    /// </summary>
    public IReadOnlyList<string> Apply(IEnumerable<CredentialDefinition> definitions)
    {
        lock (_applying)
        {
            var current = _entries;
            var dropped = new List<string>();
            var next = new Dictionary<string, CredentialEntry>(StringComparer.OrdinalIgnoreCase);
            foreach (var definition in definitions)
            {
                if (current.TryGetValue(definition.Name, out var kept) && kept.Definition.Fingerprint == definition.Fingerprint && definition.Fingerprint.Length > 0)
                {
                    next[definition.Name] = kept;
                }
                else
                {
                    // Its prefetch is scheduled by SchedulePrefetches, once references and identity are bound.
                    next[definition.Name] = NewEntry(definition);
                    if (kept is not null)
                    {
                        dropped.Add(kept.Name);
                    }
                }
            }

            foreach (var (name, entry) in current)
            {
                if (!next.ContainsKey(name))
                {
                    dropped.Add(entry.Name);
                }
            }

            // Requests that already hold a lease finish with it; every later lookup sees the new set.
            _entries = next.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
            foreach (var name in dropped)
            {
                var entry = current[name];
                entry.CancelPrefetch();
                entry.Invalidate();
                // What the dropped definition holds at its issuer (a Vault lease) is given back.
                _ = ReleaseQuietlyAsync(entry.Definition.Source);
            }

            return dropped;
        }
    }

    // Called from the constructor and under _applying: one thread draws from _random at a time.
    private CredentialEntry NewEntry(CredentialDefinition definition) => new(definition, _time, _logger, _metrics, _stopping.Token, new Random(_random.Next()));

    /// <summary>Returns a valid credential or throws <see cref="CredentialUnavailableException"/>.</summary>
    public ValueTask<CredentialLease> GetAsync(string name, CancellationToken cancellationToken) => GetFrom(_entries, name, cancellationToken);

    /// <summary>The lookup for one set of entries (the current one, or a request's generation).</summary>
    internal static ValueTask<CredentialLease> GetFrom(IReadOnlyDictionary<string, CredentialEntry> entries, string name, CancellationToken cancellationToken)
    {
        if (!entries.TryGetValue(name, out var entry))
        {
            // Validation rejects policies that name unknown credentials; this is a guard, not a path.
            throw new CredentialUnavailableException(name, "no such credential is configured");
        }

        return entry.GetAsync(cancellationToken);
    }

    /// <summary>Drops a cached credential so that the next request fetches anew; false when unknown.</summary>
    public bool Revoke(string name)
    {
        if (!_entries.TryGetValue(name, out var entry))
        {
            return false;
        }

        InvalidateWithDependents(entry);
        _ = RevokeAtSourceQuietlyAsync(entry.Definition.Source);
        return true;
    }

    /// <summary>
    /// As <see cref="Revoke"/>, then waits (at most 5 s) for the source to revoke at its issuer (a
    /// Vault lease, whose database user Vault drops), so an operator's answer means the old
    /// credential is gone, not merely forgotten; false when unknown.
    /// </summary>
    public async Task<bool> RevokeAndWaitAsync(string name)
    {
        if (!_entries.TryGetValue(name, out var entry))
        {
            return false;
        }

        InvalidateWithDependents(entry);
        await RevokeAtSourceQuietlyAsync(entry.Definition.Source).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Drops <paramref name="revoked"/> and every value built on it, transitively (an RDS auth token
    /// signed with the revoked keys): revoking the keys must not leave a token they signed in use
    /// until it expires. References are acyclic (checked at compile time); the set guards anyway.
    /// </summary>
    private void InvalidateWithDependents(CredentialEntry revoked)
    {
        var entries = _entries;
        var dropped = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { revoked.Name };
        revoked.Invalidate();
        bool more;
        do
        {
            more = false;
            foreach (var entry in entries.Values)
            {
                if (!dropped.Contains(entry.Name) && entry.Definition.Source.References.Any(r => dropped.Contains(r.Name)))
                {
                    entry.Invalidate();
                    dropped.Add(entry.Name);
                    more = true;
                }
            }
        }
        while (more);
    }

    private static async Task RevokeAtSourceQuietlyAsync(ICredentialSource source)
    {
        try
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await source.OnRevokedAsync(bound.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Best effort by contract; the cached value is already gone.
        }
    }

    /// <summary>The current entries by name; a reload's <see cref="Apply"/> replaces the whole map.</summary>
    internal FrozenDictionary<string, CredentialEntry> Entries => _entries;

    public IReadOnlyList<CredentialStatus> GetStatuses() =>
        _entries.Values.Select(e => e.GetStatus()).OrderBy(s => s.Name, StringComparer.Ordinal).ToArray();

    /// <summary>Releases every source's issued credentials (Vault leases) at shutdown, bounded by <paramref name="cancellationToken"/>.</summary>
    public async Task ReleaseAllAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _released, 1) == 1)
        {
            return;
        }

        await Task.WhenAll(_entries.Values.Select(e => ReleaseQuietlyAsync(e.Definition.Source, cancellationToken))).ConfigureAwait(false);
    }

    private static async Task ReleaseQuietlyAsync(ICredentialSource source, CancellationToken cancellationToken = default)
    {
        try
        {
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bound.CancelAfter(TimeSpan.FromSeconds(5));
            await source.ReleaseAsync(bound.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Best effort by contract: a source logs its own failure; a stop or reload must not fail here.
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            foreach (var entry in _entries.Values)
            {
                entry.CancelPrefetch();
            }

            // Cancels fetches in flight; they record "cancelled because the proxy is stopping".
            _stopping.Cancel();
            _stopping.Dispose();
        }
    }
}
