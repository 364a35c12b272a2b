namespace SecretlessProxy.Credentials;

/// <summary>
/// The validated settings of an OAuth2 client-credentials source (RFC 6749 section 4.4).
/// <see cref="ClientSecretFile"/> is null when the client authenticates with the workload token.
/// </summary>
internal sealed record OAuth2ClientCredentialsSettings(
    Uri TokenUrl,
    string ClientId,
    string? ClientSecretFile,
    IReadOnlyList<string> Scopes,
    bool ClientAuthInBody,
    string? Audience,
    string? Resource,
    IReadOnlyDictionary<string, string> Parameters,
    TimeSpan DefaultLifetime,
    TimeSpan Timeout,
    int RetryAttempts,
    TimeSpan RetryDelay,
    string? Username,
    string? UsernameFile);
