using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>Obtains a fresh credential of one kind. The cache decides when; the source only fetches.</summary>
internal interface ICredentialSource
{
    /// <summary>The configured source name (<c>File</c>, <c>OAuth2ClientCredentials</c>), for spans and /credentials.</summary>
    string Kind { get; }

    /// <summary>Fetches a new value. Failures throw <see cref="CredentialFetchException"/> with a message that holds no secret.</summary>
    Task<Credential> FetchAsync(CancellationToken cancellationToken);

    /// <summary>
    /// True when a cached value no longer reflects its source (a rotated file). Called on every cache
    /// hit, so it must be cheap.
    /// </summary>
    bool IsStale(Credential credential) => false;

    /// <summary>
    /// Gives back what the source holds at its issuer (a Vault lease) when the proxy stops or a
    /// reload drops the credential. Best effort and bounded by <paramref name="cancellationToken"/>;
    /// failures are for the source to log, never to throw.
    /// </summary>
    ValueTask ReleaseAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>
    /// An operator revoked the cached value (admin <c>POST /credentials/{name}/revoke</c>): the next
    /// fetch must yield a new credential, not the same one from a cache the source keeps (MSAL's
    /// token cache, a renewable Vault lease), and what can be revoked at the issuer is. Best effort,
    /// never throws.
    /// </summary>
    ValueTask OnRevokedAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>The other credentials this source builds on (<see cref="CredentialReference"/>), bound to the cache that serves them.</summary>
    IReadOnlyList<CredentialReference> References => [];

    /// <summary>Where the value is issued, how it rotates and what revoking does, for <c>inventory</c>; never a secret.</summary>
    CredentialSourceDescription Describe() => new(Kind, "unknown", "unknown", CredentialSourceDescription.DropCacheOnly);
}
