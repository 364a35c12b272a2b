using Microsoft.Extensions.Logging.Abstractions;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;

namespace SecretlessProxy.Fleet;

/// <summary>
/// Runs one <see cref="FleetScenario"/>: every sidecar is a real <see cref="CredentialCache"/> on one
/// <see cref="VirtualClock"/> advanced a second at a time. Each second, every credential whose app
/// is using it makes a request through the cache (the ones that can only be hits are skipped unless
/// <see cref="FleetSettings.EverySecond"/>); the fetches that starts are let finish before the clock
/// moves on, so the issuer sees each at the second it was started. Every value handed out is checked
/// against the clock.
/// </summary>
internal sealed class FleetSimulation : IDisposable
{
    // Longer than any wait until a call is due again: a refresh point (under a lifetime) or a first use.
    private const int Ring = 1 << 14;

    private static readonly DateTimeOffset Origin = new(2026, 12, 3, 0, 0, 0, TimeSpan.Zero);

    private readonly FleetSettings _settings;
    private readonly FleetScenario _scenario;
    private readonly VirtualClock _time = new(Origin);
    private readonly Random _random;
    private readonly CredentialDefinition[] _definitions;
    private readonly string[] _names;
    private readonly int[] _perSecond;
    private readonly CredentialCache?[] _caches;
    private readonly CredentialEntry?[] _entries;
    private readonly long[] _due;
    private readonly long[] _startedSecond;
    private readonly List<int>[] _buckets = new List<int>[Ring];
    private readonly Dictionary<long, List<int>> _starts = [];
    private readonly List<int> _prefetching = [];
    private readonly FleetRun _run;

    public FleetSimulation(FleetSettings settings, FleetScenario scenario)
    {
        _settings = settings;
        _scenario = scenario;
        _random = new Random(settings.Seed);
        var seconds = (int)scenario.End.TotalSeconds + 2;
        _perSecond = new int[seconds];
        var m = settings.CredentialsPerSidecar;
        _names = Enumerable.Range(0, m).Select(i => "c" + i).ToArray();
        // Definitions are immutable and the issuers stateless but for their counts: one of each per credential slot, shared by the fleet.
        _definitions = Enumerable.Range(0, m).Select(i =>
        {
            var kind = settings.Kinds[i % settings.Kinds.Count];
            return new CredentialDefinition(_names[i], new CountingIssuer(kind, _time, Origin, _perSecond), settings.RefreshAt, settings.ExpirySkew, TimeSpan.FromSeconds(30))
            {
                RefreshJitter = settings.RefreshJitter,
                SpreadFirstRefresh = settings.SpreadFirstRefresh,
                PrefetchWithin = settings.PrefetchWithin,
            };
        }).ToArray();
        _caches = new CredentialCache?[settings.Sidecars];
        _entries = new CredentialEntry?[settings.Sidecars * m];
        _due = new long[settings.Sidecars * m];
        _startedSecond = new long[settings.Sidecars];
        Array.Fill(_due, -1);
        for (var i = 0; i < Ring; i++)
        {
            _buckets[i] = [];
        }

        _run = new FleetRun(settings, scenario, _perSecond);
        PlanStarts();
    }

    private void PlanStarts()
    {
        for (var s = 0; s < _settings.Sidecars; s++)
        {
            AddStart(s, (long)(_random.NextDouble() * _scenario.RolloutOver.TotalSeconds));
        }

        if (_scenario.RestartAt is { } restart)
        {
            // Sidecars in a random order, cut into equal batches.
            var order = Enumerable.Range(0, _settings.Sidecars).ToArray();
            _random.Shuffle(order);
            for (var i = 0; i < order.Length; i++)
            {
                var batch = (long)i * _scenario.Batches / order.Length;
                AddStart(order[i], (long)(restart + (_scenario.BatchInterval * batch)).TotalSeconds);
            }
        }
    }

    private void AddStart(int sidecar, long second)
    {
        if (!_starts.TryGetValue(second, out var list))
        {
            _starts[second] = list = [];
        }

        list.Add(sidecar);
    }

    public FleetRun Run()
    {
        var end = (long)_scenario.End.TotalSeconds;
        var calls = new List<(int Id, ValueTask<CredentialLease> Lease)>();
        var waits = new List<Task>();
        for (long t = 0; t < end; t++)
        {
            // Prefetch timers fired when the clock reached this second; their fetches finish first.
            WaitForPrefetches(waits);
            if (_starts.Remove(t, out var starting))
            {
                foreach (var sidecar in starting)
                {
                    Start(sidecar, t);
                }
            }

            calls.Clear();
            if (_settings.EverySecond)
            {
                for (var id = 0; id < _due.Length; id++)
                {
                    if (_due[id] >= 0 && _due[id] <= t)
                    {
                        calls.Add((id, Call(id)));
                    }
                }
            }
            else
            {
                var bucket = _buckets[t % Ring];
                foreach (var id in bucket)
                {
                    // A stale slot (the sidecar restarted, or the call was moved), or one already taken this second.
                    if (_due[id] == t)
                    {
                        _due[id] = -1;
                        calls.Add((id, Call(id)));
                    }
                }

                bucket.Clear();
            }

            // Every fetch this second's requests started finishes at this second.
            waits.Clear();
            foreach (var (id, lease) in calls)
            {
                if (!lease.IsCompleted)
                {
                    waits.Add(lease.AsTask());
                }
                else if (lease.Result.Outcome == CacheOutcome.RefreshAhead && _entries[id]!.Pending is { } refresh)
                {
                    waits.Add(refresh);
                }
            }

            Task.WaitAll(waits);
            foreach (var (id, lease) in calls)
            {
                Served(id, lease.Result, t);
            }

            _time.Advance(TimeSpan.FromSeconds(1));
        }

        foreach (var cache in _caches)
        {
            cache?.Dispose();
        }

        _run.IssuerCalls = _perSecond.Sum();
        return _run;
    }

    private ValueTask<CredentialLease> Call(int id)
    {
        var m = _settings.CredentialsPerSidecar;
        return _caches[id / m]!.GetAsync(_names[id % m], CancellationToken.None);
    }

    private void Start(int sidecar, long t)
    {
        // A restart: the old process and everything it cached are gone.
        _caches[sidecar]?.Dispose();
        var cache = new CredentialCache(_definitions, _time, NullLoggerFactory.Instance, null, new Random(_random.Next()));
        cache.SchedulePrefetches();
        _caches[sidecar] = cache;
        _startedSecond[sidecar] = t;
        _run.Starts++;
        var m = _settings.CredentialsPerSidecar;
        for (var i = 0; i < m; i++)
        {
            var id = (sidecar * m) + i;
            _entries[id] = cache.Entries[_names[i]];
            var firstUse = (long)Math.Ceiling(_random.NextDouble() * _settings.FirstUseWithin.TotalSeconds);
            Schedule(id, t + firstUse);
            if (_settings.PrefetchWithin is not null)
            {
                _prefetching.Add(id);
            }
        }
    }

    private void WaitForPrefetches(List<Task> waits)
    {
        if (_prefetching.Count == 0)
        {
            return;
        }

        waits.Clear();
        foreach (var id in _prefetching)
        {
            if (_entries[id]!.Pending is { } fetch)
            {
                waits.Add(fetch);
            }
        }

        Task.WaitAll(waits);
        var now = (long)(_time.GetUtcNow() - Origin).TotalSeconds;
        var window = (long)Math.Ceiling(_settings.PrefetchWithin!.Value.TotalSeconds);
        // Holding a value, or past its window (the prefetch fired or found one): stop watching it.
        _prefetching.RemoveAll(id => _entries[id]!.RefreshDue is not null || now - _startedSecond[id / _settings.CredentialsPerSidecar] > window);
    }

    private void Served(int id, CredentialLease lease, long t)
    {
        var now = _time.GetUtcNow();
        var credential = lease.Credential;
        var expires = credential.ExpiresAt!.Value;
        if (now >= expires)
        {
            _run.ExpiredHandedOut++;
        }
        else if (now >= expires - _settings.ExpirySkew)
        {
            _run.WithinSkewHandedOut++;
        }

        var inWindow = t >= (long)_scenario.MeasureFrom.TotalSeconds;
        switch (lease.Outcome)
        {
            case CacheOutcome.Fetch:
                _run.RequestsThatWaited++;
                break;
            case CacheOutcome.RefreshAhead:
                _run.RefreshesAhead++;
                if (inWindow)
                {
                    _run.RecordRefresh((expires - now) / (expires - credential.ObtainedAt), expires - now);
                }

                break;
        }

        var entry = _entries[id]!;
        if (_settings.EverySecond)
        {
            return;
        }

        // The next request that can do more than hit: the first whole second at or past the refresh
        // point, or past the end of the value's use (expiry less the skew) should that come first.
        var due = entry.RefreshDue is { } at ? Math.Min(SecondOf(at), SecondOf(expires - _settings.ExpirySkew)) : t + 1;
        Schedule(id, Math.Max(due, t + 1));
    }

    private static long SecondOf(DateTimeOffset at) => (long)Math.Ceiling((at - Origin).TotalSeconds);

    private void Schedule(int id, long second)
    {
        _due[id] = second;
        if (!_settings.EverySecond)
        {
            _buckets[second % Ring].Add(id);
        }
    }

    public void Dispose()
    {
        foreach (var cache in _caches)
        {
            cache?.Dispose();
        }
    }
}
