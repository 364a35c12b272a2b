using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// A lease whose value stays valid for a stated time from now: what a database login needs (its
/// token must not expire during the handshake) and what a token signed with another credential's
/// keys needs (keys about to expire would make a token that dies with them).
/// </summary>
internal static class CoveringLease
{
    /// <summary>
    /// The entry's current value when it stays valid for <paramref name="covering"/>; otherwise the
    /// value of a fetch (the refresh ahead already running, or a new one), waited for once. The caller
    /// checks the result with <see cref="Covers"/>: an issuer may answer with a value shorter-lived
    /// than asked.
    /// </summary>
    public static async ValueTask<CredentialLease> GetAsync(CredentialEntry entry, TimeSpan covering, TimeProvider time, CancellationToken cancellationToken)
    {
        var lease = await entry.GetAsync(cancellationToken).ConfigureAwait(false);
        if (lease.Outcome == CacheOutcome.Fetch || Covers(lease.Credential, covering, time))
        {
            // Just fetched: nothing fresher is to be had by asking again.
            return lease;
        }

        // Ask once more: a concurrent caller's fetch may have replaced the value already, and asking
        // for another would start a second fetch for nothing.
        var again = await entry.GetAsync(cancellationToken).ConfigureAwait(false);
        if (!ReferenceEquals(again.Credential, lease.Credential))
        {
            return again;
        }

        // The value expires within the window (its refresh ahead is running or failed, or its lifetime
        // is that short): wait for a fetch instead of using it. The value is not dropped, so the source
        // renews what it holds (a Vault lease keeps its database user) rather than issuing anew.
        return await entry.FetchNowAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether <paramref name="credential"/> is still valid <paramref name="covering"/> from now.</summary>
    public static bool Covers(Credential credential, TimeSpan covering, TimeProvider time) =>
        credential.ExpiresAt is not { } expires || expires - time.GetUtcNow() >= covering;
}
