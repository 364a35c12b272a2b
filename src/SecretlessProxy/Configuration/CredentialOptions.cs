namespace SecretlessProxy.Configuration;

/// <summary>
/// One credential definition. Which keys apply depends on <see cref="Source"/>; the validator reports
/// keys that are missing for the chosen source.
/// </summary>
public sealed partial class CredentialOptions
{
    /// <summary>
    /// <c>File</c>, <c>OAuth2ClientCredentials</c>, <c>OAuth2TokenExchange</c>, <c>AwsWebIdentity</c>,
    /// <c>AzureWorkloadIdentity</c>, <c>AzureManagedIdentity</c> or <c>Vault</c>. Keys of the cloud
    /// sources live in the partial files <c>CredentialOptions.*.cs</c>.
    /// </summary>
    public string? Source { get; set; }

    /// <summary>A user name is not a secret, so it may be given inline; the secret value never is.</summary>
    public string? Username { get; set; }

    public string? UsernameFile { get; set; }

    // File
    public string? Path { get; set; }

    // OAuth2ClientCredentials
    public string? TokenUrl { get; set; }

    public string? ClientId { get; set; }

    public string? ClientSecretFile { get; set; }

    public string[]? Scopes { get; set; }

    /// <summary><c>Basic</c> (default, RFC 6749 section 2.3.1) or <c>Body</c>.</summary>
    public string? ClientAuth { get; set; }

    /// <summary><c>WorkloadToken</c>: authenticate with the workload identity token as an RFC 7523 client assertion instead of a secret.</summary>
    public string? ClientAssertion { get; set; }

    public string? Audience { get; set; }

    public string? Resource { get; set; }

    /// <summary>Extra form parameters sent to the token endpoint.</summary>
    public Dictionary<string, string>? Parameters { get; set; }

    /// <summary>Lifetime assumed when the token endpoint omits <c>expires_in</c>. Default 5 minutes.</summary>
    public TimeSpan? DefaultLifetime { get; set; }

    /// <summary>Fraction of the lifetime after which the cache refreshes ahead of expiry. Default 0.8.</summary>
    public double? RefreshAt { get; set; }

    /// <summary>A credential is treated as expired this long before its real expiry, for clock skew and transit. Default 5 s.</summary>
    public TimeSpan? ExpirySkew { get; set; }

    /// <summary>Wall-clock limit for one token request. Default 10 s.</summary>
    public TimeSpan? Timeout { get; set; }

    /// <summary>Retries after a failed token request within one fetch. Default 2.</summary>
    public int? RetryAttempts { get; set; }

    /// <summary>First retry delay; doubles with jitter. Default 200 ms.</summary>
    public TimeSpan? RetryDelay { get; set; }

    /// <summary>Longest wait between fetch attempts after repeated failures. Default 30 s.</summary>
    public TimeSpan? MaxBackoff { get; set; }
}
