namespace SecretlessProxy.Configuration;

/// <summary>Keys of the cloud and Vault sources; each applies to the sources its comment names.</summary>
public sealed partial class CredentialOptions
{
    // AwsWebIdentity
    public string? RoleArn { get; set; }

    public string? RoleSessionName { get; set; }

    public string? Region { get; set; }

    public string? StsUrl { get; set; }

    public TimeSpan? Duration { get; set; }

    // AzureWorkloadIdentity (ClientId and Scopes are shared with OAuth2ClientCredentials)
    public string? TenantId { get; set; }

    public string? AuthorityHost { get; set; }

    // OAuth2TokenExchange (TokenUrl, Audience, Scopes, Resource shared)
    public string? RequestedTokenType { get; set; }

    public string? SubjectTokenType { get; set; }

    // Vault
    public string? Address { get; set; }

    /// <summary><c>Jwt</c> or <c>Kubernetes</c>.</summary>
    public string? AuthMethod { get; set; }

    public string? AuthMount { get; set; }

    public string? Role { get; set; }

    public string? SecretPath { get; set; }

    public string? Field { get; set; }

    public string? DynamicPath { get; set; }

    public string? CaFile { get; set; }
}
