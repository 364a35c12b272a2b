namespace SecretlessProxy.Credentials;

/// <summary>The keys of a <c>Vault</c> credential: a KV v2 secret's field, or dynamic credentials.</summary>
internal sealed class VaultSourceOptions : IssuerSourceOptions
{
    public string? Address { get; set; }

    /// <summary><c>Jwt</c> or <c>Kubernetes</c>: how Vault is logged in to with the workload token.</summary>
    public string? AuthMethod { get; set; }

    /// <summary>The auth method's mount path. Default: the method's name.</summary>
    public string? AuthMount { get; set; }

    public string? Role { get; set; }

    /// <summary>A KV v2 secret, <c>mount/path</c>, whose <see cref="Field"/> is injected.</summary>
    public string? SecretPath { get; set; }

    public string? Field { get; set; }

    /// <summary>A path that issues a user name and password with each lease (<c>database/creds/orders</c>).</summary>
    public string? DynamicPath { get; set; }

    /// <summary>CA certificates (PEM) Vault's certificate chain may end in.</summary>
    public string? CaFile { get; set; }

    /// <summary>How long a KV value is served before it is read again. Default 5 minutes.</summary>
    public TimeSpan? DefaultLifetime { get; set; }
}
