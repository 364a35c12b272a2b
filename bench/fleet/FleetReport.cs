using System.Globalization;

namespace SecretlessProxy.Fleet;

/// <summary>The markdown that <c>bench/run.sh fleet</c> appends to bench/RESULTS.md.</summary>
internal static class FleetReport
{
    public static void Write(TextWriter output, IReadOnlyList<FleetRun> runs, TimeSpan wall)
    {
        var first = runs[0].Settings;
        var steady = first.SteadyRatePerSecond();
        output.WriteLine(Invariant($"{first.Sidecars:N0} sidecars × {first.CredentialsPerSidecar} credentials ({string.Join(", ", first.Kinds.Take(first.CredentialsPerSidecar).Select(k => k.Name))}), RefreshAt {first.RefreshAt}, ExpirySkew {first.ExpirySkew.TotalSeconds:0} s, the real CredentialCache on a virtual clock (1 s steps), every credential in use every second once its app first needs it; fleet rolled out over the first hour, restarts at 3 h, measured {runs[0].Scenario.MeasureFor.TotalHours:0} h from 3 h. Steady rate (each credential once per RefreshAt of its lifetime): {steady:0.0}/s, {steady * 60:0}/min. Seed {first.Seed}; {wall.TotalSeconds:0} s of wall time for all runs."));
        output.WriteLine();
        output.WriteLine("| scenario | refresh spreading | prefetch | token requests | mean/s | peak/s (peak ÷ mean) | mean/min | peak/min (÷ mean) | first minute of the restart: peak/s ÷ its mean/s | after it: peak/s ÷ steady, peak/min ÷ steady | every minute under 2× steady after | lifetime left at refresh: min, mean | expired or within skew handed out |");
        output.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var run in runs)
        {
            var s = run.Settings;
            var (peakS, _) = run.PeakSecond(run.From, run.To);
            var (peakM, _) = run.PeakMinute(run.From, run.To);
            var meanM = run.MeanPerSecond * 60;
            string restartMinute = "-", after = "-", settled = "-";
            if (run.Scenario.RestartAt is { } restart)
            {
                var r = (long)restart.TotalSeconds;
                // 61 one-second bins: a fetch that a timer starts between two ticks is counted at the later one.
                var minute = run.Sum(r, r + 61) / 61.0;
                var peak = run.PeakSecond(r, r + 61).Peak;
                restartMinute = Invariant($"{peak} ÷ {minute:0.0} = {peak / minute:0.0}×");
                var (laterS, _) = run.PeakSecond(r + 61, run.To);
                var (laterM, _) = run.PeakMinute(r + 61, run.To);
                after = Invariant($"{laterS / steady:0.00}×, {laterM / (steady * 60):0.00}×");
                settled = run.SettledAfter(r, run.To) is { } k ? Invariant($"{k / 60} min") : "never (in the window)";
            }

            var prefetch = s.PrefetchWithin is { } p ? Invariant($"within {p.TotalSeconds:0} s") : "at first use";
            if (s.FirstUseWithin > TimeSpan.Zero)
            {
                prefetch += Invariant($" (apps: first use within {s.FirstUseWithin.TotalMinutes:0} min)");
            }

            var staleness = run.MeasuredRefreshes == 0 ? "-" : Invariant($"{run.MinRemainingFraction:P1} ({run.MinRemaining.TotalSeconds:0} s), {run.MeanRemainingFraction:P1}");
            output.WriteLine(Invariant(
                $"| {run.Scenario.Name} | {s.Label} | {prefetch} | {run.MeasuredCalls:N0} | {run.MeanPerSecond:0.0} | {peakS} ({peakS / run.MeanPerSecond:0.0}×) | {meanM:0} | {peakM} ({peakM / meanM:0.00}×) | {restartMinute} | {after} | {settled} | {staleness} | {run.ExpiredHandedOut + run.WithinSkewHandedOut} |"));
        }

        output.WriteLine();
        output.WriteLine("Goal: after a mass restart, peak over mean under 2× within a minute. Per mass-restart run: (a) the restart's first minute, its busiest second against its mean; (b) from the second minute on, the busiest minute against the steady rate:");
        output.WriteLine();
        foreach (var run in runs.Where(r => r.Scenario.RestartAt is not null && r.Scenario.Batches == 1))
        {
            var r = (long)run.Scenario.RestartAt!.Value.TotalSeconds;
            var minute = run.Sum(r, r + 61) / 61.0;
            var opening = run.PeakSecond(r, r + 61).Peak / minute;
            var later = run.PeakMinute(r + 61, run.To).Peak / (steady * 60);
            var prefetch = run.Settings.PrefetchWithin is { } p ? Invariant($"prefetch within {p.TotalSeconds:0} s") : "fetch at first use";
            var apps = run.Settings.FirstUseWithin > TimeSpan.Zero ? Invariant($"apps first use within {run.Settings.FirstUseWithin.TotalMinutes:0} min") : "apps use every credential at once";
            output.WriteLine(Invariant($"- {run.Settings.Label}, {prefetch}, {apps}: (a) {opening:0.0}× {(opening < 2 ? "met" : "not met")}; (b) {later:0.00}× {(later < 2 ? "met" : "not met")}"));
        }

        output.WriteLine();
        output.WriteLine(Invariant($"Requests that waited for a fetch (first use after a start; none after an expiry when refresh ahead works) and issuer calls, per run: {string.Join("; ", runs.Select(r => Invariant($"{r.RequestsThatWaited:N0} / {r.IssuerCalls:N0}")))}."));
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
