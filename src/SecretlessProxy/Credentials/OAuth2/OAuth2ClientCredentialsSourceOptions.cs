namespace SecretlessProxy.Credentials;

/// <summary>The keys of an <c>OAuth2ClientCredentials</c> credential (RFC 6749 section 4.4).</summary>
internal sealed class OAuth2ClientCredentialsSourceOptions : IssuerSourceOptions
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
}
