using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Credentials;

/// <summary>
/// The cache state of one credential: the current value, at most one fetch in flight, and the
/// backoff after failures. The hit path reads one volatile reference and takes no lock. Each value's
/// refresh point is drawn (<see cref="RefreshSchedule"/>) when it is cached, so the hit path only
/// compares instants; the draws come from this entry's own <see cref="Random"/>, used under the gate.
/// </summary>
internal sealed partial class CredentialEntry
{
    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly ProxyMetrics? _metrics;
    private readonly Random _random;

    private volatile CachedValue? _current;
    private Task<Credential>? _inflight;
    private int _failures;
    private int _generation;
    private DateTimeOffset _notBefore;
    private DateTimeOffset? _lastRefresh;
    private string? _lastError;
    private DateTimeOffset? _lastErrorAt;
    private ITimer? _prefetch;
    private int _prefetchScheduled;

    public CredentialEntry(CredentialDefinition definition, TimeProvider time, ILogger logger, ProxyMetrics? metrics, CancellationToken stopping, Random random)
    {
        _metrics = metrics;
        _random = random;
        Definition = definition;
        _time = time;
        _logger = logger;
        _stopping = stopping;
    }

    public CredentialDefinition Definition { get; }

    public string Name => Definition.Name;

    /// <summary>When the current value's refresh ahead is due; null when there is none. For the fleet bench and tests.</summary>
    internal DateTimeOffset? RefreshDue => _current?.RefreshAt;

    /// <summary>The fetch in flight, if any, so that a simulation can let it finish before moving its clock on.</summary>
    internal Task? Pending
    {
        get
        {
            lock (_gate)
            {
                return _inflight;
            }
        }
    }

    public ValueTask<CredentialLease> GetAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var current = _current;
        if (current is not null && now < current.UsableUntil && !Definition.Source.IsStale(current.Credential))
        {
            if (now < current.RefreshAt)
            {
                return new ValueTask<CredentialLease>(new CredentialLease(current.Credential, CacheOutcome.Hit));
            }

            // Past the refresh point but still valid: serve the cached value and let one background
            // fetch replace it, so no request waits on the token endpoint while a good value exists.
            var outcome = TryStartBackgroundRefresh(current, now) ? CacheOutcome.RefreshAhead : CacheOutcome.Hit;
            return new ValueTask<CredentialLease>(new CredentialLease(current.Credential, outcome));
        }

        return WaitForFetchAsync(now, cancellationToken);
    }

    public CredentialStatus GetStatus()
    {
        var now = _time.GetUtcNow();
        var current = _current;
        lock (_gate)
        {
            string state;
            if (current is null)
            {
                state = _inflight is not null ? "fetching" : _lastError is not null ? "failed" : "empty";
            }
            else if (now >= current.UsableUntil)
            {
                state = "expired";
            }
            else
            {
                state = _inflight is not null ? "refreshing" : "valid";
            }

            return new CredentialStatus(Name, Definition.Source.Kind, state, current?.Credential.ExpiresAt, _lastRefresh, _lastError, _lastErrorAt);
        }
    }

    /// <summary>
    /// Drops the cached value so the next request fetches anew. A fetch already in flight is
    /// detached: its result still answers the requests that were waiting for it, but it is not
    /// cached, so it cannot undo the revocation.
    /// </summary>
    public void Invalidate()
    {
        lock (_gate)
        {
            _generation++;
            _current = null;
            _inflight = null;
        }
    }

    /// <summary>
    /// Waits for a fetch: the one in flight (a refresh ahead already running) or a new one. The cached
    /// value is not dropped first, so the source still sees it: a Vault lease is renewed rather than
    /// replaced by a new database user. For callers that need a value fresher than the cached one
    /// (<see cref="CoveringLease"/>).
    /// </summary>
    public ValueTask<CredentialLease> FetchNowAsync(CancellationToken cancellationToken) => WaitForFetchAsync(_time.GetUtcNow(), cancellationToken);

    private async ValueTask<CredentialLease> WaitForFetchAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        Task<Credential> fetch;
        lock (_gate)
        {
            if (_inflight is null)
            {
                if (now < _notBefore)
                {
                    // Fail fast during backoff instead of queueing every request behind a dead endpoint.
                    throw new CredentialUnavailableException(Name, "the last fetch failed (" + _lastError + "); retrying after backoff");
                }

                _inflight = StartFetch();
            }

            fetch = _inflight;
        }

        try
        {
            // WaitAsync: a caller that gives up stops waiting, but the shared fetch goes on for the others.
            var credential = await fetch.WaitAsync(cancellationToken).ConfigureAwait(false);
            return new CredentialLease(credential, CacheOutcome.Fetch);
        }
        catch (CredentialFetchException ex)
        {
            throw new CredentialUnavailableException(Name, ex.Message);
        }
    }

    /// <summary>
    /// With <see cref="CredentialDefinition.PrefetchWithin"/>: fetches once, at a uniformly drawn instant
    /// within that window from now, unless a value or a fetch exists by then. Only this timer waits
    /// for the instant; a request that finds no value fetches at once, as without prefetch.
    /// </summary>
    public void SchedulePrefetch()
    {
        // Once per entry: a kept entry keeps the prefetch it has (or had) across reloads.
        if (Definition.PrefetchWithin is not { } window || Interlocked.Exchange(ref _prefetchScheduled, 1) != 0)
        {
            return;
        }

        TimeSpan delay;
        lock (_gate)
        {
            delay = TimeSpan.FromTicks((long)(window.Ticks * _random.NextDouble()));
        }

        var timer = _time.CreateTimer(static state => ((CredentialEntry)state!).Prefetch(), this, delay, Timeout.InfiniteTimeSpan);
        Interlocked.Exchange(ref _prefetch, timer)?.Dispose();
    }

    /// <summary>Cancels a prefetch not yet started (the entry is dropped, or the proxy stops).</summary>
    public void CancelPrefetch() => Interlocked.Exchange(ref _prefetch, null)?.Dispose();

    private void Prefetch()
    {
        CancelPrefetch();
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        Task<Credential> fetch;
        lock (_gate)
        {
            // A request got here first (or a fetch failed and backs off): nothing to do.
            if (_current is not null || _inflight is not null || _time.GetUtcNow() < _notBefore)
            {
                return;
            }

            fetch = _inflight = StartFetch();
        }

        fetch.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private bool TryStartBackgroundRefresh(CachedValue seen, DateTimeOffset now)
    {
        Task<Credential> fetch;
        lock (_gate)
        {
            // The value read outside the lock may have been replaced since by the refresh that was
            // running then: that refresh has also cleared _inflight, so without this check a second,
            // needless refresh would start right after it.
            if (!ReferenceEquals(_current, seen) || _inflight is not null || now < _notBefore)
            {
                return false;
            }

            fetch = _inflight = StartFetch();
        }

        // Nobody awaits a background refresh; its failure is recorded in the entry's state.
        fetch.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return true;
    }

    // Called under _gate. Task.Run guarantees that the fetch's own "clear _inflight" step, which also
    // takes _gate, runs after the caller has stored the task, even if the source completes synchronously.
    private Task<Credential> StartFetch()
    {
        var generation = _generation;
        return Task.Run(() => FetchAsync(generation), CancellationToken.None);
    }

    private async Task<Credential> FetchAsync(int generation)
    {
        using var activity = ProxyTelemetry.StartCredentialFetch(Name, Definition.Source.Kind);
        var started = _time.GetTimestamp();
        try
        {
            var credential = await Definition.Source.FetchAsync(_stopping).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            if (CachedValue.UsableUntilOf(credential, Definition, now) <= now)
            {
                throw new CredentialFetchException("the source issued a credential that is already expired", isTransient: false);
            }

            lock (_gate)
            {
                // A revocation while this fetch ran wins: the value is not cached.
                if (generation == _generation)
                {
                    // Cold: nothing usable to replace (start, revocation, expiry), so the first refresh is spread.
                    var previous = _current;
                    var cold = previous is null || now >= previous.UsableUntil;
                    var cached = CachedValue.Create(credential, Definition, now, RefreshSchedule.Fraction(Definition.RefreshAt, Definition.RefreshJitter, cold, Definition.SpreadFirstRefresh, _random.NextDouble()));
                    _current = cached;
                    _failures = 0;
                    _notBefore = default;
                    _lastRefresh = now;
                    _inflight = null;
                }
            }

            var elapsed = _time.GetElapsedTime(started);
            _metrics?.CredentialFetch(Name, Definition.Source.Kind, success: true, elapsed);
            Log.Fetched(_logger, Name, Definition.Source.Kind, credential.ExpiresAt, elapsed.TotalMilliseconds);
            activity?.SetTag(ProxyTelemetry.Tags.Outcome, "success");
            return credential;
        }
        catch (Exception ex)
        {
            var message = ex is CredentialFetchException ? ex.Message
                : ex is OperationCanceledException ? "the fetch was cancelled because the proxy is stopping"
                : "unexpected " + ex.GetType().Name + " from the credential source";
            var now = _time.GetUtcNow();
            TimeSpan backoff;
            lock (_gate)
            {
                backoff = Backoff(_failures + 1);
                if (generation == _generation)
                {
                    _failures++;
                    _notBefore = now + backoff;
                    _lastError = message;
                    _lastErrorAt = now;
                    _inflight = null;
                }
            }

            _metrics?.CredentialFetch(Name, Definition.Source.Kind, success: false, _time.GetElapsedTime(started));

            // Only the safe message is logged: an inner exception from an HTTP stack could carry a body.
            Log.FetchFailed(_logger, Name, Definition.Source.Kind, message, backoff.TotalMilliseconds);
            activity?.SetTag(ProxyTelemetry.Tags.Outcome, "failure");
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, message);
            throw ex as CredentialFetchException ?? new CredentialFetchException(message, isTransient: false);
        }
    }

    private TimeSpan Backoff(int failures)
    {
        // Exponential from one second, capped, with +-20% jitter so that many sidecars restarted
        // together do not hit the identity provider in step.
        var seconds = Math.Min(Definition.MaxBackoff.TotalSeconds, Math.Pow(2, Math.Min(failures - 1, 16)));
        var jitter = 0.8 + (_random.NextDouble() * 0.4);
        return TimeSpan.FromSeconds(seconds * jitter);
    }

    private sealed class CachedValue
    {
        private CachedValue(Credential credential, DateTimeOffset refreshAt, DateTimeOffset usableUntil)
        {
            Credential = credential;
            RefreshAt = refreshAt;
            UsableUntil = usableUntil;
        }

        public Credential Credential { get; }

        public DateTimeOffset RefreshAt { get; }

        /// <summary>After this instant the value is never handed out: the real expiry minus the skew.</summary>
        public DateTimeOffset UsableUntil { get; }

        /// <param name="refreshFraction">Where in the lifetime to refresh (<see cref="RefreshSchedule.Fraction"/>).</param>
        public static CachedValue Create(Credential credential, CredentialDefinition definition, DateTimeOffset now, double refreshFraction)
        {
            if (credential.ExpiresAt is not { } expiresAt)
            {
                return new CachedValue(credential, DateTimeOffset.MaxValue, DateTimeOffset.MaxValue);
            }

            var lifetime = expiresAt - now;
            var refreshAt = now + TimeSpan.FromTicks((long)(Math.Max(0, lifetime.Ticks) * refreshFraction));
            return new CachedValue(credential, refreshAt, UsableUntilOf(credential, definition, now));
        }

        /// <summary>The real expiry less the skew; the skew is capped at a tenth of the lifetime so that short-lived tokens remain usable.</summary>
        public static DateTimeOffset UsableUntilOf(Credential credential, CredentialDefinition definition, DateTimeOffset now)
        {
            if (credential.ExpiresAt is not { } expiresAt)
            {
                return DateTimeOffset.MaxValue;
            }

            var lifetime = expiresAt - now;
            return expiresAt - TimeSpan.FromTicks(Math.Min(definition.ExpirySkew.Ticks, Math.Max(0, lifetime.Ticks / 10)));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.CredentialFetched, LogLevel.Information, "Fetched credential {CredentialName} from {CredentialSource}, expires {ExpiresAt}, in {DurationMs} ms")]
        public static partial void Fetched(ILogger logger, string credentialName, string credentialSource, DateTimeOffset? expiresAt, double durationMs);

        [LoggerMessage(EventIds.CredentialFetchFailed, LogLevel.Warning, "Fetching credential {CredentialName} from {CredentialSource} failed: {Reason}; next attempt in {BackoffMs} ms at the earliest")]
        public static partial void FetchFailed(ILogger logger, string credentialName, string credentialSource, string reason, double backoffMs);
    }
}
