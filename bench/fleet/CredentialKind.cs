namespace SecretlessProxy.Fleet;

/// <summary>One kind of credential a sidecar holds, with the lifetime its issuer gives.</summary>
internal sealed record CredentialKind(string Name, TimeSpan Lifetime)
{
    /// <summary>
    /// Lifetimes like the real issuers': an OAuth2 or Entra access token (1 h), an AWS web-identity
    /// session at its shortest (15 min), a Vault dynamic database lease (30 min). Credential i of a
    /// sidecar is kind i modulo this list.
    /// </summary>
    public static IReadOnlyList<CredentialKind> Defaults { get; } =
    [
        new("oauth2-token-1h", TimeSpan.FromHours(1)),
        new("aws-session-15m", TimeSpan.FromMinutes(15)),
        new("vault-lease-30m", TimeSpan.FromMinutes(30)),
    ];
}
