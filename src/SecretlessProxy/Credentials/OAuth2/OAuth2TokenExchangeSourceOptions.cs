namespace SecretlessProxy.Credentials;

/// <summary>The keys of an <c>OAuth2TokenExchange</c> credential (RFC 8693, the workload token as subject).</summary>
internal sealed class OAuth2TokenExchangeSourceOptions : IssuerSourceOptions
{
    public string? TokenUrl { get; set; }

    /// <summary>Sent as <c>client_id</c> when given.</summary>
    public string? ClientId { get; set; }

    public string? SubjectTokenType { get; set; }

    public string? RequestedTokenType { get; set; }

    public string[]? Scopes { get; set; }

    public string? Audience { get; set; }

    public string? Resource { get; set; }

    /// <summary>Extra form parameters sent to the token endpoint.</summary>
    public Dictionary<string, string>? Parameters { get; set; }

    /// <summary>Lifetime assumed when the token endpoint omits <c>expires_in</c>. Default 5 minutes.</summary>
    public TimeSpan? DefaultLifetime { get; set; }

    // Keys of the client-credentials grant, bound only to be refused by name.
    public string? ClientSecretFile { get; set; }

    public string? ClientAssertion { get; set; }

    public string? ClientAuth { get; set; }
}
