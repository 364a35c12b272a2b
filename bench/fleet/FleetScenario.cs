namespace SecretlessProxy.Fleet;

/// <summary>
/// One timeline: the fleet is rolled out over <see cref="RolloutOver"/> (sidecars started at uniformly
/// drawn instants, as a fleet that grew over time), then optionally restarted at <see cref="RestartAt"/>
/// in <see cref="Batches"/> batches <see cref="BatchInterval"/> apart (1 batch: all at once), and the
/// issuer's calls are measured over <see cref="MeasureFor"/> from <see cref="MeasureFrom"/>.
/// </summary>
internal sealed record FleetScenario(string Name, TimeSpan RolloutOver, TimeSpan? RestartAt, int Batches, TimeSpan BatchInterval, TimeSpan MeasureFrom, TimeSpan MeasureFor)
{
    public TimeSpan End => MeasureFrom + MeasureFor;

    public static FleetScenario Steady(TimeSpan measureFor) =>
        new("steady state", TimeSpan.FromHours(1), null, 0, TimeSpan.Zero, TimeSpan.FromHours(3), measureFor);

    /// <summary>A rolling restart: 20 batches of 5% of the fleet, 15 s apart (5 minutes).</summary>
    public static FleetScenario Rolling(TimeSpan measureFor) =>
        new("rolling restart (20 batches, 15 s apart)", TimeSpan.FromHours(1), TimeSpan.FromHours(3), 20, TimeSpan.FromSeconds(15), TimeSpan.FromHours(3), measureFor);

    public static FleetScenario Mass(TimeSpan measureFor) =>
        new("mass restart (all at once)", TimeSpan.FromHours(1), TimeSpan.FromHours(3), 1, TimeSpan.Zero, TimeSpan.FromHours(3), measureFor);
}
