namespace SecretlessProxy.Fleet;

/// <summary>What every sidecar of one simulated fleet is configured with, and how its app uses it.</summary>
internal sealed record FleetSettings
{
    public int Sidecars { get; init; } = 10_000;

    public int CredentialsPerSidecar { get; init; } = 3;

    /// <summary>The proxy's <c>RefreshAt</c>.</summary>
    public double RefreshAt { get; init; } = 0.8;

    /// <summary>The proxy's <c>RefreshJitter</c>; 0 with <see cref="SpreadFirstRefresh"/> false is the proxy before issue 19.</summary>
    public double RefreshJitter { get; init; } = 0.1;

    /// <summary>The proxy's <c>SpreadFirstRefresh</c>.</summary>
    public bool SpreadFirstRefresh { get; init; } = true;

    /// <summary>The proxy's <c>PrefetchWithin</c>; null fetches at first use.</summary>
    public TimeSpan? PrefetchWithin { get; init; }

    /// <summary>The proxy's <c>ExpirySkew</c>.</summary>
    public TimeSpan ExpirySkew { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// After a sidecar starts, its app first needs each credential at a uniformly drawn instant within
    /// this; from then on every second. Zero: at once (a busy service, the worst case for a restart).
    /// </summary>
    public TimeSpan FirstUseWithin { get; init; }

    public int Seed { get; init; } = 19;

    /// <summary>
    /// Call the cache for every credential in use every virtual second. Off (the default), a call that
    /// can only be a hit (before the value's refresh point, which is before its expiry) is skipped:
    /// the same fetches, a hundred times faster. On, for the smoke test that checks exactly that.
    /// </summary>
    public bool EverySecond { get; init; }

    public IReadOnlyList<CredentialKind> Kinds { get; init; } = CredentialKind.Defaults;

    /// <summary>What the jitter columns of the report say.</summary>
    public string Label => RefreshJitter == 0 && !SpreadFirstRefresh ? "off (fixed RefreshAt)"
        : "RefreshJitter " + RefreshJitter.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture) + (SpreadFirstRefresh ? ", SpreadFirstRefresh" : string.Empty);

    /// <summary>Token requests per second of a fleet in steady state: each credential once per <c>RefreshAt</c> of its lifetime.</summary>
    public double SteadyRatePerSecond()
    {
        var rate = 0.0;
        for (var i = 0; i < CredentialsPerSidecar; i++)
        {
            rate += 1 / (RefreshAt * Kinds[i % Kinds.Count].Lifetime.TotalSeconds);
        }

        return rate * Sidecars;
    }
}
