namespace SecretlessProxy.Fleet;

/// <summary>What one scenario measured: the issuer's calls per second and what the sidecars were handed.</summary>
internal sealed class FleetRun
{
    private readonly int[] _perSecond;
    private double _remainingFractionSum;

    public FleetRun(FleetSettings settings, FleetScenario scenario, int[] perSecond)
    {
        Settings = settings;
        Scenario = scenario;
        _perSecond = perSecond;
    }

    public FleetSettings Settings { get; }

    public FleetScenario Scenario { get; }

    /// <summary>Sidecar (re)starts, the rollout included.</summary>
    public int Starts { get; set; }

    /// <summary>Calls the issuer counted over the whole timeline.</summary>
    public long IssuerCalls { get; set; }

    /// <summary>Requests that found no usable value and waited for a fetch (first use after a start, or after an expiry).</summary>
    public long RequestsThatWaited { get; set; }

    /// <summary>Requests that started a refresh ahead, over the whole timeline.</summary>
    public long RefreshesAhead { get; set; }

    /// <summary>Values handed out at or past their real expiry. Must be 0.</summary>
    public long ExpiredHandedOut { get; set; }

    /// <summary>Values handed out within ExpirySkew of their expiry. Must be 0.</summary>
    public long WithinSkewHandedOut { get; set; }

    /// <summary>Refreshes ahead in the measured window.</summary>
    public long MeasuredRefreshes { get; private set; }

    /// <summary>The least lifetime a value had left when its refresh started, as a fraction of that lifetime.</summary>
    public double MinRemainingFraction { get; private set; } = double.PositiveInfinity;

    public double MaxRemainingFraction { get; private set; }

    public TimeSpan MinRemaining { get; private set; } = TimeSpan.MaxValue;

    public double MeanRemainingFraction => MeasuredRefreshes == 0 ? double.NaN : _remainingFractionSum / MeasuredRefreshes;

    public void RecordRefresh(double remainingFraction, TimeSpan remaining)
    {
        MeasuredRefreshes++;
        _remainingFractionSum += remainingFraction;
        MinRemainingFraction = Math.Min(MinRemainingFraction, remainingFraction);
        MaxRemainingFraction = Math.Max(MaxRemainingFraction, remainingFraction);
        if (remaining < MinRemaining)
        {
            MinRemaining = remaining;
        }
    }

    /// <summary>Issuer calls in virtual second <paramref name="second"/> of the timeline.</summary>
    public int At(long second) => _perSecond[second];

    public long From => (long)Scenario.MeasureFrom.TotalSeconds;

    public long To => (long)Scenario.End.TotalSeconds;

    public long MeasuredCalls => Sum(From, To);

    public double MeanPerSecond => (double)MeasuredCalls / (To - From);

    public (int Peak, long At) PeakSecond(long from, long to)
    {
        var peak = -1;
        var at = from;
        for (var s = from; s < to; s++)
        {
            if (_perSecond[s] > peak)
            {
                peak = _perSecond[s];
                at = s;
            }
        }

        return (peak, at);
    }

    /// <summary>The busiest one-minute window (aligned to the window's start) and its start.</summary>
    public (long Peak, long At) PeakMinute(long from, long to)
    {
        var peak = -1L;
        var at = from;
        for (var s = from; s + 60 <= to; s += 60)
        {
            var count = Sum(s, s + 60);
            if (count > peak)
            {
                peak = count;
                at = s;
            }
        }

        return (peak, at);
    }

    /// <summary>
    /// From <paramref name="from"/>, the first minute boundary after which every one-minute window
    /// stays under twice the steady per-minute rate; null when some window at the end still does not.
    /// </summary>
    public long? SettledAfter(long from, long to)
    {
        var limit = 2 * Settings.SteadyRatePerSecond() * 60;
        long? settled = 0;
        for (var s = from; s + 60 <= to; s += 60)
        {
            if (Sum(s, s + 60) >= limit)
            {
                settled = s + 60 - from;
            }
        }

        return settled >= to - from - 60 ? null : settled;
    }

    public long Sum(long from, long to)
    {
        var sum = 0L;
        for (var s = from; s < to; s++)
        {
            sum += _perSecond[s];
        }

        return sum;
    }
}
