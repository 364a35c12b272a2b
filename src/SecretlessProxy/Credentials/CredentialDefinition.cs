namespace SecretlessProxy.Credentials;

/// <summary>The validated, immutable timing settings of one credential; the source holds the rest.</summary>
internal sealed record CredentialDefinition(
    string Name,
    ICredentialSource Source,
    double RefreshAt,
    TimeSpan ExpirySkew,
    TimeSpan MaxBackoff)
{
    /// <summary>
    /// The credential's configuration as written (every key and value under its section, sorted):
    /// a reload keeps the cached value only when this is unchanged. Holds paths and names, never a
    /// secret (the schema has no place for one); internal, never emitted.
    /// </summary>
    public string Fingerprint { get; init; } = string.Empty;

    /// <summary>Who answers for the credential (<c>Owner</c>); null when the configuration names nobody.</summary>
    public CredentialOwner? Owner { get; init; }

    /// <summary>
    /// Half the width of the refresh window, as a fraction of the lifetime: each value's refresh
    /// point is drawn uniformly in <c>RefreshAt ± RefreshJitter</c>, so sidecars that fetched together
    /// do not refresh together. 0 (the default here; configuration defaults to 0.1) refreshes exactly at <see cref="RefreshAt"/>.
    /// </summary>
    public double RefreshJitter { get; init; }

    /// <summary>
    /// A value fetched cold (no value to replace: at start, after a revocation or an expiry) gets its
    /// first refresh point drawn over the whole refresh interval, not the jitter window, so a fleet
    /// restarted together is spread from its first refresh on (see <see cref="RefreshSchedule"/>).
    /// </summary>
    public bool SpreadFirstRefresh { get; init; }

    /// <summary>
    /// When set, the credential is fetched at start without waiting for a request, at a uniformly drawn
    /// instant within this window; a request that needs it before then fetches it at once. Null: at first use.
    /// </summary>
    public TimeSpan? PrefetchWithin { get; init; }
}
