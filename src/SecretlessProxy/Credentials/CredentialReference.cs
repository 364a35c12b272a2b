using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// One credential that a source builds on (an RDS auth token is signed with the keys of an
/// <c>AwsWebIdentity</c> credential). It is leased from the running proxy's cache, so the credential
/// it names keeps one session for every use (one STS session signs HTTP requests and mints database
/// tokens) and is refreshed, backed off and revoked as usual. Checked at compile time by what the
/// named credential yields (<see cref="CredentialShape"/>), never by its source's name, and without
/// cycles (<see cref="CredentialReferences"/>).
/// </summary>
internal sealed class CredentialReference
{
    private readonly CredentialReferences _compilation;
    private volatile CredentialCache? _cache;

    internal CredentialReference(CredentialReferences compilation, string from, string key, string name)
    {
        _compilation = compilation;
        From = from;
        Key = key;
        Name = name;
    }

    /// <summary>The credential that holds the reference.</summary>
    public string From { get; }

    /// <summary>The key that names the other credential (<c>SecretlessProxy:Credentials:rds:SigningCredential</c>).</summary>
    public string Key { get; }

    /// <summary>The credential referred to.</summary>
    public string Name { get; }

    /// <summary>The referred credential's source as compiled with this configuration, for descriptions; null when it did not compile.</summary>
    public ICredentialSource? Source => _compilation.SourceOf(Name);

    /// <summary>
    /// The cache the running proxy serves this configuration from (set when the snapshot is applied,
    /// <see cref="BindAll"/>). A configuration only validated (<c>validate</c>, <c>inventory</c>) has none.
    /// </summary>
    internal void Bind(CredentialCache cache) => _cache = cache;

    /// <summary>Binds every reference of <paramref name="credentials"/>' sources to <paramref name="cache"/>.</summary>
    public static void BindAll(IEnumerable<CredentialDefinition> credentials, CredentialCache cache)
    {
        foreach (var credential in credentials)
        {
            foreach (var reference in credential.Source.References)
            {
                reference.Bind(cache);
            }
        }
    }

    /// <summary>
    /// A current value of the referred credential that stays valid for at least
    /// <paramref name="covering"/> (<see cref="CoveringLease"/>). Failures are
    /// <see cref="CredentialFetchException"/>s that say it was this credential that failed, and why.
    /// </summary>
    public async Task<Credential> GetAsync(TimeSpan covering, TimeProvider time, CancellationToken cancellationToken)
    {
        var cache = _cache ?? throw new CredentialFetchException("credential '" + Name + "' is not served by a running proxy", isTransient: false);
        if (!cache.Entries.TryGetValue(Name, out var entry))
        {
            throw new CredentialFetchException("credential '" + Name + "' is no longer configured", isTransient: false);
        }

        try
        {
            var lease = await CoveringLease.GetAsync(entry, covering, time, cancellationToken).ConfigureAwait(false);
            return lease.Credential;
        }
        catch (CredentialUnavailableException ex)
        {
            throw new CredentialFetchException("credential '" + Name + "' is unavailable: " + ex.Reason, isTransient: true);
        }
    }
}
