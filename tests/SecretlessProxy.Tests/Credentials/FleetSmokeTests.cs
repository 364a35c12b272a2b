using Xunit;
using SecretlessProxy.Fleet;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// bench/fleet at 200 sidecars (the full run is <c>bench/run.sh fleet</c>): through a rollout and a
/// mass restart, with refresh spreading on and off, no sidecar is ever handed a value past its expiry
/// less the skew; the issuer's counts equal the fetches the caches started; and the bench's shortcut
/// (skipping requests that can only be hits) changes no fetch against requesting every second.
/// </summary>
[Collection(ProcessSpansCollection.Name)]
public sealed class FleetSmokeTests
{
    private static readonly FleetScenario Scenario = new("smoke", TimeSpan.FromMinutes(30), TimeSpan.FromHours(1), 1, TimeSpan.Zero, TimeSpan.FromHours(1), TimeSpan.FromHours(1));

    [Theory]
    [InlineData(0.1, true)]
    [InlineData(0.0, false)]
    public void Two_hundred_sidecars_through_a_mass_restart_get_no_expired_value_and_the_counts_add_up(double jitter, bool spreadFirst)
    {
        var settings = new FleetSettings { Sidecars = 200, RefreshJitter = jitter, SpreadFirstRefresh = spreadFirst, Seed = 7 };

        var every = Run(settings with { EverySecond = true });
        var skipping = Run(settings);

        foreach (var run in new[] { every, skipping })
        {
            Assert.Equal(0, run.ExpiredHandedOut);
            Assert.Equal(0, run.WithinSkewHandedOut);
            Assert.Equal(400, run.Starts);
            // Every fetch was started by a request that waited or one that refreshed ahead (no prefetch here).
            Assert.Equal(run.IssuerCalls, run.RequestsThatWaited + run.RefreshesAhead);
            // Each start needs each credential once before anything is cached: 2 starts x 200 x 3.
            Assert.Equal(1200, run.RequestsThatWaited);
        }

        for (long s = 0; s < Scenario.End.TotalSeconds; s++)
        {
            Assert.True(every.At(s) == skipping.At(s), "second " + s + ": " + every.At(s) + " fetches requesting every second, " + skipping.At(s) + " skipping hits");
        }
    }

    [Fact]
    public void A_spread_prefetch_is_counted_and_hands_out_no_expired_value()
    {
        var settings = new FleetSettings { Sidecars = 200, PrefetchWithin = TimeSpan.FromMinutes(1), FirstUseWithin = TimeSpan.FromMinutes(10), Seed = 11 };

        var run = Run(settings);

        Assert.Equal(0, run.ExpiredHandedOut);
        Assert.Equal(0, run.WithinSkewHandedOut);
        // Prefetches are the fetches no request started: at most one per credential per start.
        var prefetches = run.IssuerCalls - run.RequestsThatWaited - run.RefreshesAhead;
        Assert.InRange(prefetches, 1, 1200);
        Assert.Equal(1200, prefetches + run.RequestsThatWaited);
    }

    private static FleetRun Run(FleetSettings settings)
    {
        using var simulation = new FleetSimulation(settings, Scenario);
        return simulation.Run();
    }
}
