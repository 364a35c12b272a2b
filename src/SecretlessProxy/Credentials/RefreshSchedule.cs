namespace SecretlessProxy.Credentials;

/// <summary>
/// Where in a value's lifetime the cache refreshes it, as a fraction of that lifetime. Pure: the
/// caller supplies the uniform draw, so a seeded source reproduces a fleet's schedule.
/// </summary>
internal static class RefreshSchedule
{
    /// <summary>A cold value's first refresh comes no earlier than this fraction of its lifetime (half of RefreshAt - RefreshJitter when that is less).</summary>
    public const double FirstRefreshFloor = 0.1;

    /// <summary>
    /// A value that replaces one (a refresh ahead): uniformly in <c>refreshAt ± jitter</c>, so each
    /// refresh moves a sidecar's phase by a random amount and a fleet in step drifts apart.
    /// A cold value with <paramref name="spreadFirst"/>: drawn from the stationary phase of that
    /// process (the time to the next refresh of a sidecar observed at a random instant): uniform on
    /// [0, refreshAt - jitter), then falling linearly to zero at refreshAt + jitter; except that the
    /// uniform part starts at <see cref="FirstRefreshFloor"/>. Sidecars that all fetched at one
    /// instant (a mass restart) then refresh at about the rate of a fleet that never restarted
    /// (1/(1 - 0.1/0.7), 1.17x, by default) from their first refresh on, at the cost of one early
    /// refresh each.
    /// </summary>
    /// <param name="uniform">A draw in [0, 1).</param>
    public static double Fraction(double refreshAt, double jitter, bool cold, bool spreadFirst, double uniform)
    {
        if (!(cold && spreadFirst))
        {
            return refreshAt + (jitter * ((2 * uniform) - 1));
        }

        var low = refreshAt - jitter;
        var high = refreshAt + jitter;
        // The flat part holds (refreshAt - jitter) / refreshAt of the probability, the triangle the rest.
        var flat = low / refreshAt;
        if (uniform < flat)
        {
            // Not before the floor: a refresh right after the cold fetch would only repeat it. The
            // flat part's points are squeezed into [floor, low), a rate 1/(1 - floor/low) of steady.
            var floor = Math.Min(FirstRefreshFloor, low / 2);
            return floor + (uniform / flat * (low - floor));
        }

        var v = (uniform - flat) / (1 - flat);
        return high - ((high - low) * Math.Sqrt(1 - v));
    }
}
