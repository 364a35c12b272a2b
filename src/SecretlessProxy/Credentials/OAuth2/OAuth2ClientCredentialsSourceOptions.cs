namespace SecretlessProxy.Credentials;

/// <summary>The keys of an <c>OAuth2ClientCredentials</c> credential (RFC 6749 section 4.4).</summary>
internal sealed class OAuth2ClientCredentialsSourceOptions : IIssuerEndpointOptions
{
    public string? TokenUrl { get; set; }

    public string? ClientId { get; set; }

    public string? ClientSecretFile { get; set; }

    /// <summary><c>Basic</c> (default, RFC 6749 section 2.3.1) or <c>Body</c>.</summary>
    public string? ClientAuth { get; set; }

    /// <summary><c>WorkloadToken</c>: authenticate with the workload identity token as an RFC 7523 client assertion instead of a secret.</summary>
    public string? ClientAssertion { get; set; }

    public string[]? Scopes { get; set; }

    public string? Audience { get; set; }

    public string? Resource { get; set; }

    /// <summary>Extra form parameters sent to the token endpoint.</summary>
    public Dictionary<string, string>? Parameters { get; set; }

    /// <summary>Lifetime assumed when the token endpoint omits <c>expires_in</c>. Default 5 minutes.</summary>
    public TimeSpan? DefaultLifetime { get; set; }

    /// <summary>Wall-clock limit for one token request. Default 10 s.</summary>
    public TimeSpan? Timeout { get; set; }

    /// <summary>Retries after a failed token request within one fetch. Default 2.</summary>
    public int? RetryAttempts { get; set; }

    /// <summary>First retry delay; doubles with jitter. Default 200 ms.</summary>
    public TimeSpan? RetryDelay { get; set; }

    public string? UnixSocket { get; set; }

    public string[]? PinnedCertificateSha256 { get; set; }

    public bool? AllowLoopbackSquatting { get; set; }
}
