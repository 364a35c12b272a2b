using System.Diagnostics;
using System.Globalization;

namespace SecretlessProxy.Fleet;

/// <summary>
/// <c>bench/run.sh fleet</c>: the refresh load a fleet of sidecars puts on its issuers, with the proxy's
/// refresh spreading off and on, in steady state, through a rolling restart and after a mass restart.
/// Prints a markdown section. Options: <c>--sidecars N</c> (10000), <c>--credentials M</c> (3),
/// <c>--hours H</c> measured after the restart (2), <c>--seed S</c> (19).
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        var sidecars = Option(args, "--sidecars", 10_000);
        var credentials = Option(args, "--credentials", 3);
        var hours = Option(args, "--hours", 2);
        var seed = Option(args, "--seed", 19);
        var measure = TimeSpan.FromHours(hours);

        var off = new FleetSettings { Sidecars = sidecars, CredentialsPerSidecar = credentials, Seed = seed, RefreshJitter = 0, SpreadFirstRefresh = false };
        var on = off with { RefreshJitter = 0.1, SpreadFirstRefresh = true };
        var idleOn = on with { FirstUseWithin = TimeSpan.FromMinutes(10) };
        var runs = new List<(FleetSettings Settings, FleetScenario Scenario)>();
        foreach (var scenario in new[] { FleetScenario.Steady(measure), FleetScenario.Rolling(measure), FleetScenario.Mass(measure) })
        {
            runs.Add((off, scenario));
            runs.Add((on, scenario));
        }

        // Apps that need their credentials only some minutes after start: what a prefetch spread over
        // a minute does, against one that is not spread (every sidecar prefetches within its first second).
        var idle = FleetScenario.Mass(measure) with { Name = "mass restart, apps first use within 10 min" };
        runs.Add((idleOn with { PrefetchWithin = TimeSpan.FromSeconds(1) }, idle));
        runs.Add((idleOn with { PrefetchWithin = TimeSpan.FromMinutes(1) }, idle));
        runs.Add((idleOn, idle));

        // One run at a time: a run spends most of its wall time waiting for the thread pool to run each
        // second's fetches, and runs side by side on 2 busy cores were slower, not faster.
        var wall = Stopwatch.StartNew();
        var results = new List<FleetRun>();
        foreach (var (settings, scenario) in runs)
        {
            var started = wall.Elapsed;
            using var simulation = new FleetSimulation(settings, scenario);
            results.Add(simulation.Run());
            Console.Error.WriteLine($"{scenario.Name}, {settings.Label}: {(wall.Elapsed - started).TotalSeconds:0.0} s");
        }

        FleetReport.Write(Console.Out, results, wall.Elapsed);
        // A value handed out expired, or counts that do not add up, is a failure of the cache, not a measurement.
        return results.All(r => r.ExpiredHandedOut == 0 && r.WithinSkewHandedOut == 0) ? 0 : 1;
    }

    private static int Option(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
