using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Xunit;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// <see cref="CredentialCache"/> on its own, in memory: a fake clock and an in-test source that
/// counts its fetches and answers each one only when the test says so. One fetch serves every
/// concurrent caller; past the configured fraction of the lifetime the old value keeps serving while
/// exactly one refresh runs; a failure backs off and a still-valid value keeps serving; a value past
/// its expiry (less the skew) is never handed out; entries are keyed by name and by the definition's
/// configuration, so a reload keeps only what did not change. The same behaviour through the whole
/// proxy, with a real token endpoint, is in CredentialLifecycleTests.
/// </summary>
[Collection(ProcessSpansCollection.Name)]
public sealed class CredentialCacheTests : IDisposable
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(100);
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(5);

    // Past the longest first backoff: one second with up to +20% jitter.
    private static readonly TimeSpan PastFirstBackoff = TimeSpan.FromSeconds(1.3);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero));
    private readonly List<CredentialCache> _caches = [];

    private CredentialCache Cache(params CredentialDefinition[] definitions)
    {
        var cache = new CredentialCache(definitions, _time, NullLoggerFactory.Instance);
        _caches.Add(cache);
        return cache;
    }

    private static CredentialDefinition Definition(string name, CountingSource source, double refreshAt = 0.8, string fingerprint = "v1") =>
        new(name, source, refreshAt, Skew, MaxBackoff: TimeSpan.FromMinutes(5)) { Fingerprint = fingerprint };

    private Credential Value(string secret, TimeSpan? lifetime = null) => new(secret, "app", _time.GetUtcNow(), _time.GetUtcNow() + (lifetime ?? Lifetime));

    /// <summary>A caller that finds the cache empty: its fetch is answered with <paramref name="value"/>.</summary>
    private static async Task<CredentialLease> FetchedAsync(CredentialCache cache, CountingSource source, Credential value, string name = "db")
    {
        var waiting = cache.GetAsync(name, CancellationToken.None).AsTask();
        (await source.NextCallAsync()).SetResult(value);
        var lease = await waiting;
        Assert.Equal(CacheOutcome.Fetch, lease.Outcome);
        return lease;
    }

    private static CredentialLease Served(CredentialCache cache, string name = "db")
    {
        var pending = cache.GetAsync(name, CancellationToken.None);
        Assert.True(pending.IsCompletedSuccessfully, "a valid cached value is served without waiting");
        return pending.Result;
    }

    private static CredentialStatus Status(CredentialCache cache, string name = "db") => cache.GetStatuses().Single(s => s.Name == name);

    [Fact]
    public async Task Concurrent_callers_on_a_cold_cache_share_one_fetch()
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source));

        var joined = 0;
        var callers = Enumerable.Range(0, 64).Select(_ => Task.Run(() =>
        {
            var lease = cache.GetAsync("db", CancellationToken.None).AsTask();
            Interlocked.Increment(ref joined);
            return lease;
        })).ToArray();
        var call = await source.NextCallAsync();
        // Every caller is waiting before the one fetch answers.
        await Poll.UntilAsync(() => Volatile.Read(ref joined) == callers.Length, "every caller to be waiting");
        Assert.Equal("fetching", Status(cache).State);
        var value = Value("secret-1");
        call.SetResult(value);
        var leases = await Task.WhenAll(callers);

        Assert.Equal(1, source.Fetches);
        Assert.All(leases, l =>
        {
            Assert.Same(value, l.Credential);
            Assert.Equal(CacheOutcome.Fetch, l.Outcome);
        });
        // Served from the cache afterwards, still without another fetch.
        Assert.Equal(CacheOutcome.Hit, Served(cache).Outcome);
        Assert.Equal(1, source.Fetches);
    }

    [Fact]
    public async Task A_caller_that_gives_up_does_not_cancel_the_fetch_the_others_wait_for()
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source));
        using var impatient = new CancellationTokenSource();

        var leaving = cache.GetAsync("db", impatient.Token).AsTask();
        var staying = cache.GetAsync("db", CancellationToken.None).AsTask();
        var call = await source.NextCallAsync();
        await impatient.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
        var value = Value("secret-1");
        call.SetResult(value);

        Assert.Same(value, (await staying).Credential);
        Assert.Equal(1, source.Fetches);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.8)]
    [InlineData(0.9)]
    public async Task Past_the_configured_fraction_the_old_value_serves_while_one_refresh_runs(double refreshAt)
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source, refreshAt));
        var old = (await FetchedAsync(cache, source, Value("secret-1"))).Credential;

        _time.Advance(Lifetime * refreshAt - TimeSpan.FromSeconds(1));
        Assert.Equal(CacheOutcome.Hit, Served(cache).Outcome);
        Assert.Equal(1, source.Fetches);

        _time.Advance(TimeSpan.FromSeconds(2));
        var ahead = Served(cache);
        Assert.Equal(CacheOutcome.RefreshAhead, ahead.Outcome);
        Assert.Same(old, ahead.Credential);
        var refresh = await source.NextCallAsync();

        // While the refresh runs, every caller gets the old value at once and no second refresh starts.
        for (var i = 0; i < 10; i++)
        {
            var during = Served(cache);
            Assert.Equal(CacheOutcome.Hit, during.Outcome);
            Assert.Same(old, during.Credential);
        }

        Assert.Equal("refreshing", Status(cache).State);
        Assert.Equal(2, source.Fetches);

        var fresh = Value("secret-2");
        refresh.SetResult(fresh);
        await Poll.UntilAsync(() => Served(cache).Credential == fresh, "the refreshed value to be served");
        Assert.Equal(CacheOutcome.Hit, Served(cache).Outcome);
        Assert.Equal(2, source.Fetches);
    }

    [Fact]
    public async Task Callers_racing_a_refresh_as_it_completes_start_no_second_one()
    {
        // A caller that read the old value just before the refresh replaced it must not take the
        // refresh's end (no fetch in flight) as leave to start another. The window is a few
        // instructions wide, so the race is run many times with callers spinning on both cores.
        for (var round = 0; round < 200; round++)
        {
            var source = new CountingSource();
            var cache = Cache(Definition("db", source));
            await FetchedAsync(cache, source, Value("secret-1"));
            _time.Advance(TimeSpan.FromSeconds(81));
            Assert.Equal(CacheOutcome.RefreshAhead, Served(cache).Outcome);
            var refresh = await source.NextCallAsync();

            var fresh = Value("secret-2");
            using var done = new CancellationTokenSource();
            var callers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
            {
                while (!done.IsCancellationRequested && Served(cache).Credential != fresh)
                {
                }
            })).ToArray();
            refresh.SetResult(fresh);
            await Poll.UntilAsync(() => Served(cache).Credential == fresh, "the refreshed value to be served");
            await done.CancelAsync();
            await Task.WhenAll(callers);

            Assert.Equal(2, source.Fetches);
        }
    }

    [Fact]
    public async Task A_failed_refresh_backs_off_and_the_valid_value_keeps_serving()
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source));
        var old = (await FetchedAsync(cache, source, Value("secret-1"))).Credential;

        _time.Advance(TimeSpan.FromSeconds(81));
        Assert.Equal(CacheOutcome.RefreshAhead, Served(cache).Outcome);
        (await source.NextCallAsync()).SetException(new CredentialFetchException("issuer down", isTransient: true));
        await Poll.UntilAsync(() => Status(cache).LastError == "issuer down", "the failure to be recorded");

        // During the backoff: the old value, no new attempt.
        var during = Served(cache);
        Assert.Equal(CacheOutcome.Hit, during.Outcome);
        Assert.Same(old, during.Credential);
        Assert.Equal("valid", Status(cache).State);
        Assert.Equal(2, source.Fetches);

        // After it: the next caller starts one more refresh, still served the old value.
        _time.Advance(PastFirstBackoff);
        var retry = Served(cache);
        Assert.Equal(CacheOutcome.RefreshAhead, retry.Outcome);
        Assert.Same(old, retry.Credential);
        var fresh = Value("secret-2");
        (await source.NextCallAsync()).SetResult(fresh);
        await Poll.UntilAsync(() => Served(cache).Credential == fresh, "the refreshed value to be served");
        Assert.Equal(3, source.Fetches);
    }

    [Fact]
    public async Task An_expired_value_is_never_returned_even_when_no_new_one_can_be_had()
    {
        var source = new CountingSource();
        // Refresh at 99% of the lifetime: past the expiry less the skew, so no refresh ahead helps here.
        var cache = Cache(Definition("db", source, refreshAt: 0.99));
        var old = (await FetchedAsync(cache, source, Value("secret-1"))).Credential;

        _time.Advance(Lifetime - Skew - TimeSpan.FromMilliseconds(1));
        Assert.Same(old, Served(cache).Credential);

        // From expiry less the skew, a caller waits for a new value instead of getting the old one...
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var waiting = cache.GetAsync("db", CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);
        Assert.Equal("expired", Status(cache).State);
        (await source.NextCallAsync()).SetException(new CredentialFetchException("issuer down", isTransient: true));

        // ...and when none can be had, it is refused, never handed the expired one.
        var ex = await Assert.ThrowsAsync<CredentialUnavailableException>(() => waiting);
        Assert.Equal("credential 'db' is unavailable: issuer down", ex.Message);
        var during = await Assert.ThrowsAsync<CredentialUnavailableException>(async () => await cache.GetAsync("db", CancellationToken.None));
        Assert.Equal("the last fetch failed (issuer down); retrying after backoff", during.Reason);
        _time.Advance(TimeSpan.FromDays(1));
        var late = cache.GetAsync("db", CancellationToken.None).AsTask();
        (await source.NextCallAsync()).SetException(new CredentialFetchException("issuer still down", isTransient: true));
        await Assert.ThrowsAsync<CredentialUnavailableException>(() => late);
        Assert.Equal(3, source.Fetches);
    }

    [Fact]
    public async Task The_expiry_skew_is_at_most_a_tenth_of_a_short_lifetime()
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source, refreshAt: 0.99));
        // 20 s of life: a 5 s skew would cost a quarter of it, so 2 s is taken off instead.
        var old = (await FetchedAsync(cache, source, Value("secret-1", TimeSpan.FromSeconds(20)))).Credential;

        _time.Advance(TimeSpan.FromSeconds(18) - TimeSpan.FromMilliseconds(1));
        Assert.Same(old, Served(cache).Credential);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var waiting = cache.GetAsync("db", CancellationToken.None).AsTask();
        var fresh = Value("secret-2");
        (await source.NextCallAsync()).SetResult(fresh);
        Assert.Same(fresh, (await waiting).Credential);
    }

    [Fact]
    public async Task A_source_that_issues_an_already_expired_value_is_refused()
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source));

        var waiting = cache.GetAsync("db", CancellationToken.None).AsTask();
        (await source.NextCallAsync()).SetResult(new Credential("secret-1", "app", _time.GetUtcNow() - TimeSpan.FromHours(1), _time.GetUtcNow()));

        var ex = await Assert.ThrowsAsync<CredentialUnavailableException>(() => waiting);
        Assert.Equal("the source issued a credential that is already expired", ex.Reason);
    }

    [Fact]
    public async Task A_failure_on_a_cold_cache_fails_fast_during_a_growing_backoff_then_fetches_again()
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source));

        var first = cache.GetAsync("db", CancellationToken.None).AsTask();
        (await source.NextCallAsync()).SetException(new CredentialFetchException("issuer down", isTransient: true));
        await Assert.ThrowsAsync<CredentialUnavailableException>(() => first);
        var fast = await Assert.ThrowsAsync<CredentialUnavailableException>(async () => await cache.GetAsync("db", CancellationToken.None));
        Assert.Contains("retrying after backoff", fast.Reason);
        Assert.Equal("failed", Status(cache).State);

        // The second failure doubles the wait (two seconds, less at most 20% jitter).
        _time.Advance(PastFirstBackoff);
        var second = cache.GetAsync("db", CancellationToken.None).AsTask();
        (await source.NextCallAsync()).SetException(new CredentialFetchException("issuer down", isTransient: true));
        await Assert.ThrowsAsync<CredentialUnavailableException>(() => second);
        _time.Advance(PastFirstBackoff);
        await Assert.ThrowsAsync<CredentialUnavailableException>(async () => await cache.GetAsync("db", CancellationToken.None));
        Assert.Equal(2, source.Fetches);

        _time.Advance(TimeSpan.FromSeconds(1.2));
        var value = Value("secret-1");
        Assert.Same(value, (await FetchedAsync(cache, source, value)).Credential);
        Assert.Equal(3, source.Fetches);
        Assert.Equal("valid", Status(cache).State);
    }

    [Fact]
    public async Task Entries_are_keyed_by_name_without_regard_to_case_and_fetch_on_their_own()
    {
        var orders = new CountingSource();
        var billing = new CountingSource();
        var cache = Cache(Definition("orders", orders), Definition("billing", billing));

        var ordersValue = (await FetchedAsync(cache, orders, Value("orders-secret"), "orders")).Credential;
        Assert.Same(ordersValue, Served(cache, "ORDERS").Credential);
        Assert.Equal(0, billing.Fetches);
        var billingValue = (await FetchedAsync(cache, billing, Value("billing-secret"), "Billing")).Credential;
        Assert.Same(billingValue, Served(cache, "billing").Credential);
        Assert.Equal(1, orders.Fetches);

        var unknown = await Assert.ThrowsAsync<CredentialUnavailableException>(async () => await cache.GetAsync("payments", CancellationToken.None));
        Assert.Equal("no such credential is configured", unknown.Reason);
    }

    [Fact]
    public async Task A_reload_keeps_a_cached_value_only_for_an_unchanged_definition()
    {
        var same = new CountingSource();
        var changed = new CountingSource();
        var unversioned = new CountingSource();
        var removed = new CountingSource();
        var cache = Cache(Definition("same", same), Definition("changed", changed), Definition("unversioned", unversioned, fingerprint: string.Empty), Definition("removed", removed));
        var sameValue = (await FetchedAsync(cache, same, Value("same-1"), "same")).Credential;
        await FetchedAsync(cache, changed, Value("changed-1"), "changed");
        await FetchedAsync(cache, unversioned, Value("unversioned-1"), "unversioned");
        await FetchedAsync(cache, removed, Value("removed-1"), "removed");

        var changedAgain = new CountingSource();
        var unversionedAgain = new CountingSource();
        var dropped = cache.Apply([
            Definition("same", new CountingSource()),
            Definition("changed", changedAgain, fingerprint: "v2"),
            Definition("unversioned", unversionedAgain, fingerprint: string.Empty),
        ]);

        Assert.Equal(["changed", "removed", "unversioned"], dropped.Order(StringComparer.Ordinal));
        // Unchanged: the value and the source it came from stay.
        Assert.Same(sameValue, Served(cache, "same").Credential);
        // Changed (or of unknown version): fetched anew from the new definition's source.
        var fresh = Value("changed-2");
        Assert.Same(fresh, (await FetchedAsync(cache, changedAgain, fresh, "changed")).Credential);
        await FetchedAsync(cache, unversionedAgain, Value("unversioned-2"), "unversioned");
        Assert.Equal(1, changed.Fetches);
        // Removed: gone, and what its source held at the issuer is given back.
        Assert.Equal("no such credential is configured", (await Assert.ThrowsAsync<CredentialUnavailableException>(async () => await cache.GetAsync("removed", CancellationToken.None))).Reason);
        await Poll.UntilAsync(() => removed.Releases == 1 && changed.Releases == 1 && unversioned.Releases == 1, "the dropped sources to be released");
        Assert.Equal(0, same.Releases);
    }

    [Fact]
    public async Task A_revocation_during_a_fetch_answers_the_waiting_caller_but_caches_nothing()
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source));

        var waiting = cache.GetAsync("db", CancellationToken.None).AsTask();
        var call = await source.NextCallAsync();
        Assert.True(cache.Revoke("db"));
        Assert.False(cache.Revoke("unknown"));
        var value = Value("secret-1");
        call.SetResult(value);

        Assert.Same(value, (await waiting).Credential);
        var next = Value("secret-2");
        Assert.Same(next, (await FetchedAsync(cache, source, next)).Credential);
        await Poll.UntilAsync(() => source.Revocations == 1, "the source to hear of the revocation");
    }

    [Fact]
    public async Task A_value_its_source_calls_stale_is_fetched_anew()
    {
        var source = new CountingSource();
        var cache = Cache(Definition("db", source));
        var old = (await FetchedAsync(cache, source, Value("secret-1"))).Credential;

        source.Stale.Add(old);

        var fresh = Value("secret-2");
        Assert.Same(fresh, (await FetchedAsync(cache, source, fresh)).Credential);
        Assert.Same(fresh, Served(cache).Credential);
    }

    public void Dispose()
    {
        foreach (var cache in _caches)
        {
            cache.Dispose();
        }
    }

    /// <summary>A source that counts its fetches and answers each one when the test completes it.</summary>
    private sealed class CountingSource : ICredentialSource
    {
        private readonly Channel<TaskCompletionSource<Credential>> _calls = Channel.CreateUnbounded<TaskCompletionSource<Credential>>();
        private int _fetches;
        private int _releases;
        private int _revocations;

        public string Kind => "Counting";

        public int Fetches => Volatile.Read(ref _fetches);

        public int Releases => Volatile.Read(ref _releases);

        public int Revocations => Volatile.Read(ref _revocations);

        /// <summary>Values this source reports as stale (a rotated file would be).</summary>
        public HashSet<Credential> Stale { get; } = [];

        public async Task<Credential> FetchAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _fetches);
            var call = new TaskCompletionSource<Credential>(TaskCreationOptions.RunContinuationsAsynchronously);
            _calls.Writer.TryWrite(call);
            return await call.Task.WaitAsync(cancellationToken);
        }

        public bool IsStale(Credential credential) => Stale.Contains(credential);

        public ValueTask ReleaseAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _releases);
            return ValueTask.CompletedTask;
        }

        public ValueTask OnRevokedAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _revocations);
            return ValueTask.CompletedTask;
        }

        /// <summary>The next fetch the cache starts; fails the test when none comes.</summary>
        public async Task<TaskCompletionSource<Credential>> NextCallAsync()
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                return await _calls.Reader.ReadAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail("the cache started no fetch (" + Fetches + " so far)");
                throw;
            }
        }
    }
}
