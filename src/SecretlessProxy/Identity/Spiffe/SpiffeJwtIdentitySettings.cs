namespace SecretlessProxy.Identity.Spiffe;

/// <summary>Validated <c>Identity</c> settings for <c>Source: SpiffeWorkloadApi</c>.</summary>
internal sealed class SpiffeJwtIdentitySettings : IWorkloadIdentitySettings
{
    public const string SourceName = "SpiffeWorkloadApi";

    public SpiffeJwtIdentitySettings(string socketPath, string audience, string? spiffeId, TimeSpan clockSkew)
    {
        SocketPath = socketPath;
        Audience = audience;
        SpiffeId = spiffeId;
        ClockSkew = clockSkew;
    }

    /// <summary>The Workload API's Unix socket.</summary>
    public string SocketPath { get; }

    /// <summary>The audience the JWT-SVID is fetched for (and verified against).</summary>
    public string Audience { get; }

    /// <summary>Which of the workload's identities to use, when the agent issues several; null for the first.</summary>
    public string? SpiffeId { get; }

    public TimeSpan ClockSkew { get; }

    /// <summary>How long one Workload API call may take (not configurable: tests shorten it).</summary>
    internal TimeSpan CallTimeout { get; init; } = WorkloadApiClient.DefaultCallTimeout;

    /// <summary>Always: the JWT-SVID is verified against the trust domain's JWT bundle from the same agent.</summary>
    public bool Verifies => true;

    public bool SameAs(IWorkloadIdentitySettings? other) =>
        other is SpiffeJwtIdentitySettings b && SocketPath == b.SocketPath && Audience == b.Audience && SpiffeId == b.SpiffeId && ClockSkew == b.ClockSkew;

    public IWorkloadIdentitySource Start(IdentityServices services) =>
        new SpiffeJwtIdentity(this, services.Time, services.Loggers.CreateLogger<SpiffeJwtIdentity>());
}
