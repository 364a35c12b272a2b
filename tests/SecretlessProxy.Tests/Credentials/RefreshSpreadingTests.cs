using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Xunit;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// Issue 19: the cache's refresh spreading on a fake clock with seeded draws. A value that replaces
/// one refreshes inside <c>RefreshAt ± RefreshJitter</c> of its lifetime, spread over that window; a
/// cold value's first refresh is spread over the whole interval; whatever the draw, no value past
/// its expiry less the skew is handed out and one fetch serves every caller; a prefetch spread over
/// a window never holds up a request that needs the credential before it fires.
/// </summary>
[Collection(ProcessSpansCollection.Name)]
public sealed class RefreshSpreadingTests : IDisposable
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(1000);
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(5);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero));
    private readonly List<CredentialCache> _caches = [];

    private CredentialCache Cache(CredentialDefinition definition, int seed)
    {
        var cache = new CredentialCache([definition], _time, NullLoggerFactory.Instance, null, new Random(seed));
        cache.SchedulePrefetches();
        _caches.Add(cache);
        return cache;
    }

    private static CredentialDefinition Definition(ICredentialSource source, double jitter, bool spreadFirst, TimeSpan? prefetch = null, double refreshAt = 0.8) =>
        new("db", source, refreshAt, Skew, TimeSpan.FromMinutes(5)) { RefreshJitter = jitter, SpreadFirstRefresh = spreadFirst, PrefetchWithin = prefetch };

    private static async Task<CredentialLease> GetAsync(CredentialCache cache)
    {
        var lease = await cache.GetAsync("db", CancellationToken.None);
        // A refresh ahead runs in the background: let it land before the clock moves.
        if (cache.Entries["db"].Pending is { } pending)
        {
            await pending;
        }

        return lease;
    }

    private static TimeSpan RefreshOffset(CredentialCache cache, Credential value) => cache.Entries["db"].RefreshDue!.Value - value.ObtainedAt;

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(0.5)]
    [InlineData(0.874)]
    [InlineData(0.875)]
    [InlineData(0.999999)]
    public void The_drawn_fraction_stays_in_its_window(double uniform)
    {
        var warm = RefreshSchedule.Fraction(0.8, 0.1, cold: false, spreadFirst: true, uniform);
        Assert.InRange(warm, 0.7, 0.9);
        var cold = RefreshSchedule.Fraction(0.8, 0.1, cold: true, spreadFirst: true, uniform);
        Assert.InRange(cold, RefreshSchedule.FirstRefreshFloor, 0.9);
        Assert.Equal(0.8, RefreshSchedule.Fraction(0.8, 0, cold: false, spreadFirst: false, uniform), 12);
        Assert.Equal(warm, RefreshSchedule.Fraction(0.8, 0.1, cold: true, spreadFirst: false, uniform), 12);
    }

    [Fact]
    public async Task Refresh_points_fall_inside_RefreshAt_plus_or_minus_the_jitter_and_are_spread_over_it()
    {
        var caches = Enumerable.Range(0, 100).Select(seed => (Cache: Cache(Definition(new AnsweringSource(_time, Lifetime), 0.1, spreadFirst: false), seed), Value: (Credential?)null)).ToArray();
        for (var i = 0; i < caches.Length; i++)
        {
            caches[i].Value = (await GetAsync(caches[i].Cache)).Credential;
        }

        var offsets = caches.Select(c => RefreshOffset(c.Cache, c.Value!).TotalSeconds).ToArray();
        Assert.All(offsets, o => Assert.InRange(o, 700, 900));
        // 100 uniform draws over 200 s: not one point, and most of the window covered.
        Assert.True(offsets.Max() - offsets.Min() > 150, "refresh points spread over " + (offsets.Max() - offsets.Min()) + " s");

        // Before the window every request is a hit; after it, every credential has started its refresh.
        _time.Advance(TimeSpan.FromSeconds(699));
        foreach (var (cache, _) in caches)
        {
            Assert.Equal(CacheOutcome.Hit, (await GetAsync(cache)).Outcome);
        }

        _time.Advance(TimeSpan.FromSeconds(202));
        foreach (var (cache, value) in caches)
        {
            var lease = await GetAsync(cache);
            Assert.Equal(CacheOutcome.RefreshAhead, lease.Outcome);
            Assert.Same(value, lease.Credential);
            // The replacement's own refresh point is again inside the window of its lifetime.
            var fresh = (await GetAsync(cache)).Credential;
            Assert.NotSame(value, fresh);
            Assert.InRange(RefreshOffset(cache, fresh).TotalSeconds, 700, 900);
        }
    }

    [Fact]
    public async Task A_cold_value_has_its_first_refresh_spread_over_the_whole_interval_and_later_ones_in_the_window()
    {
        var caches = Enumerable.Range(0, 100).Select(seed => Cache(Definition(new AnsweringSource(_time, Lifetime), 0.1, spreadFirst: true), seed)).ToArray();
        var offsets = new List<double>();
        foreach (var cache in caches)
        {
            var value = (await GetAsync(cache)).Credential;
            offsets.Add(RefreshOffset(cache, value).TotalSeconds);
        }

        // Not before a tenth of the lifetime: a refresh right after the fetch would only repeat it.
        Assert.All(offsets, o => Assert.InRange(o, 100, 900));
        // The stationary phase puts 7/8 of the points before 700 s; a fixed window would put none.
        Assert.True(offsets.Count(o => o < 700) > 50, "points before 700 s: " + offsets.Count(o => o < 700));

        _time.Advance(TimeSpan.FromSeconds(901));
        foreach (var cache in caches)
        {
            Assert.Equal(CacheOutcome.RefreshAhead, (await GetAsync(cache)).Outcome);
            var fresh = (await GetAsync(cache)).Credential;
            Assert.InRange(RefreshOffset(cache, fresh).TotalSeconds, 700, 900);
        }
    }

    [Fact]
    public async Task No_value_past_its_expiry_less_the_skew_is_handed_out_whatever_the_draw()
    {
        // Refresh windows reaching 99% of a 100 s lifetime, past the 95 s a value may be used: some
        // draws fall after that, and those requests must wait for a new value.
        var lifetime = TimeSpan.FromSeconds(100);
        var waitedPastUse = 0;
        for (var seed = 0; seed < 50; seed++)
        {
            var cache = Cache(Definition(new AnsweringSource(_time, lifetime), 0.19, spreadFirst: true), seed);
            var start = _time.GetUtcNow();
            var first = true;
            while (_time.GetUtcNow() - start < TimeSpan.FromSeconds(400))
            {
                var now = _time.GetUtcNow();
                var lease = await GetAsync(cache);
                Assert.True(now < lease.Credential.ExpiresAt!.Value - Skew, "handed out a value " + (lease.Credential.ExpiresAt.Value - now).TotalSeconds + " s before its expiry");
                if (lease.Outcome == CacheOutcome.Fetch && !first)
                {
                    waitedPastUse++;
                }

                first = false;
                _time.Advance(TimeSpan.FromSeconds(1));
            }
        }

        Assert.True(waitedPastUse > 0, "no draw fell past the usable time, so this test checked nothing");

        // And when no new value can be had, the old one is refused, not handed out.
        var failing = new AnsweringSource(_time, lifetime);
        var last = Cache(Definition(failing, 0.19, spreadFirst: false), seed: 7);
        var old = (await GetAsync(last)).Credential;
        failing.Fail = true;
        _time.Advance(lifetime - Skew);
        await Assert.ThrowsAsync<CredentialUnavailableException>(() => last.GetAsync("db", CancellationToken.None).AsTask());
        Assert.True(_time.GetUtcNow() >= old.ExpiresAt!.Value - Skew);
    }

    [Fact]
    public async Task Past_a_jittered_refresh_point_many_callers_still_start_one_fetch()
    {
        var source = new AnsweringSource(_time, Lifetime);
        var cache = Cache(Definition(source, 0.1, spreadFirst: true), seed: 3);
        var old = (await GetAsync(cache)).Credential;
        _time.Advance(TimeSpan.FromSeconds(901));

        source.Hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var leases = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(() => cache.GetAsync("db", CancellationToken.None).AsTask())));
        Assert.All(leases, l => Assert.Same(old, l.Credential));
        Assert.Single(leases, l => l.Outcome == CacheOutcome.RefreshAhead);
        await Poll.UntilAsync(() => source.Fetches == 2, "the one refresh to reach the issuer");

        source.Hold.SetResult();
        await Poll.UntilAsync(() => Served(cache).Credential != old, "the refreshed value to be served");
        Assert.Equal(2, source.Fetches);
    }

    [Fact]
    public async Task A_request_before_the_prefetch_point_fetches_at_once_and_the_prefetch_then_does_nothing()
    {
        var source = new AnsweringSource(_time, Lifetime);
        var cache = Cache(Definition(source, 0.1, spreadFirst: true, prefetch: TimeSpan.FromMinutes(1)), seed: 5);

        // The clock has not moved: no timer can have fired, and the request does not wait for one.
        var lease = await cache.GetAsync("db", CancellationToken.None);
        Assert.Equal(CacheOutcome.Fetch, lease.Outcome);
        Assert.Equal(_time.GetUtcNow(), Assert.Single(source.FetchedAt));

        // Past the window the prefetch has fired, found the value and fetched nothing.
        for (var i = 0; i < 61; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Null(cache.Entries["db"].Pending);
        Assert.Equal(1, source.Fetches);
    }

    [Fact]
    public async Task Without_a_request_each_sidecar_prefetches_once_at_its_own_instant_in_the_window()
    {
        var start = _time.GetUtcNow();
        var sources = Enumerable.Range(0, 20).Select(_ => new AnsweringSource(_time, Lifetime)).ToArray();
        var caches = sources.Select((s, i) => Cache(Definition(s, 0.1, spreadFirst: true, prefetch: TimeSpan.FromMinutes(1)), seed: 100 + i)).ToArray();
        Assert.All(sources, s => Assert.Equal(0, s.Fetches));

        for (var i = 0; i < 60; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            // Each fetch a timer started lands before the clock moves on, so its instant is exact.
            foreach (var cache in caches)
            {
                if (cache.Entries["db"].Pending is { } pending)
                {
                    await pending;
                }
            }
        }

        Assert.All(sources, s => Assert.InRange(Assert.Single(s.FetchedAt) - start, TimeSpan.Zero, TimeSpan.FromSeconds(60)));
        Assert.True(sources.Select(s => s.FetchedAt[0]).Distinct().Count() > 10, "prefetches at " + sources.Select(s => s.FetchedAt[0]).Distinct().Count() + " distinct instants");
        foreach (var cache in caches)
        {
            // Served from the prefetched value at once (a cold value's first refresh may already be due).
            Assert.NotEqual(CacheOutcome.Fetch, Served(cache).Outcome);
        }
    }

    [Fact]
    public async Task A_hit_costs_no_allocation()
    {
        // Not spread first: the refresh point is at least 700 s away, so every call below is a hit.
        var cache = Cache(Definition(new AnsweringSource(_time, Lifetime), 0.1, spreadFirst: false), seed: 9);
        await GetAsync(cache);
        CountHits(cache, 100);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var hits = CountHits(cache, 10_000);

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(10_000, hits);
    }

    private static CredentialLease Served(CredentialCache cache)
    {
        var pending = cache.GetAsync("db", CancellationToken.None);
        Assert.True(pending.IsCompletedSuccessfully, "a cached value is served without waiting");
        return pending.Result;
    }

    private static int CountHits(CredentialCache cache, int calls)
    {
        var hits = 0;
        for (var i = 0; i < calls; i++)
        {
            var pending = cache.GetAsync("db", CancellationToken.None);
            hits += pending.IsCompletedSuccessfully && pending.Result.Outcome == CacheOutcome.Hit ? 1 : 0;
        }

        return hits;
    }

    public void Dispose()
    {
        foreach (var cache in _caches)
        {
            cache.Dispose();
        }
    }

    /// <summary>An issuer that answers each fetch with a value of <c>lifetime</c> from the fake clock's now, or holds or fails it when told.</summary>
    private sealed class AnsweringSource(TimeProvider time, TimeSpan lifetime) : ICredentialSource
    {
        private int _fetches;

        public string Kind => "Test";

        public int Fetches => Volatile.Read(ref _fetches);

        public List<DateTimeOffset> FetchedAt { get; } = [];

        public bool Fail { get; set; }

        public TaskCompletionSource? Hold { get; set; }

        public async Task<Credential> FetchAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _fetches);
            var now = time.GetUtcNow();
            lock (FetchedAt)
            {
                FetchedAt.Add(now);
            }

            if (Hold is { } hold)
            {
                await hold.Task.WaitAsync(cancellationToken);
            }

            if (Fail)
            {
                throw new CredentialFetchException("issuer down", isTransient: true);
            }

            return new Credential("secret-" + _fetches, "app", now, now + lifetime);
        }
    }
}
