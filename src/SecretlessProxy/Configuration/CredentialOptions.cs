namespace SecretlessProxy.Configuration;

/// <summary>
/// The keys every credential has, whatever its <see cref="Source"/>. The source's own keys are
/// bound by its kind (<c>Credentials/CredentialSourceRegistry</c>) from the same section.
/// </summary>
internal sealed class CredentialOptions
{
    /// <summary>
    /// <c>File</c>, <c>OAuth2ClientCredentials</c>, <c>OAuth2TokenExchange</c>, <c>AwsWebIdentity</c>,
    /// <c>AzureWorkloadIdentity</c>, <c>AzureManagedIdentity</c> or <c>Vault</c>: a registered kind's name.
    /// </summary>
    public string? Source { get; set; }

    /// <summary>A user name is not a secret, so it may be given inline; the secret value never is.</summary>
    public string? Username { get; set; }

    public string? UsernameFile { get; set; }

    /// <summary>Fraction of the lifetime after which the cache refreshes ahead of expiry. Default 0.8.</summary>
    public double? RefreshAt { get; set; }

    /// <summary>
    /// Each value's refresh point is drawn uniformly in <c>RefreshAt ± RefreshJitter</c> (fractions of the
    /// lifetime), so that sidecars which fetched together refresh apart. Default 0.1 (less when RefreshAt is within 0.2 of 0 or 1).
    /// </summary>
    public double? RefreshJitter { get; set; }

    /// <summary>A cold value's (start, revocation, expiry) first refresh point is spread over the whole refresh interval. Default true.</summary>
    public bool? SpreadFirstRefresh { get; set; }

    /// <summary>Fetch at start, at a random instant within this window, instead of at the first request. Default: at first use.</summary>
    public TimeSpan? PrefetchWithin { get; set; }

    /// <summary>A credential is treated as expired this long before its real expiry, for clock skew and transit. Default 5 s.</summary>
    public TimeSpan? ExpirySkew { get; set; }

    /// <summary>Longest wait between fetch attempts after repeated failures. Default 30 s.</summary>
    public TimeSpan? MaxBackoff { get; set; }

    /// <summary>Who answers for the credential, for <c>inventory</c>; required when <c>RequireOwners</c> is true.</summary>
    public CredentialOwnerOptions? Owner { get; set; }
}
