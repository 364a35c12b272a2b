using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// The validated settings of a Vault source: either a KV v2 secret's <see cref="Field"/>, or a
/// dynamic secret (<see cref="Dynamic"/>) whose user name and password come from one lease.
/// <see cref="ReadPath"/> is the API path below <c>/v1/</c> with each segment escaped
/// (<c>secret/data/payments/api</c>, <c>database/creds/orders</c>); nothing here is a secret.
/// <see cref="Endpoint"/> says how Vault is reached (a Unix socket, a pinned certificate).
/// </summary>
internal sealed record VaultSettings(
    Uri Address,
    string AuthMount,
    string Role,
    bool Dynamic,
    string ConfiguredPath,
    string ReadPath,
    string? Field,
    string? CaFile,
    TimeSpan ReadInterval,
    TimeSpan Timeout,
    int RetryAttempts,
    TimeSpan RetryDelay,
    string? Username,
    string? UsernameFile,
    IssuerEndpoint? Endpoint = null);
