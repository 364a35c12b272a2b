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
    /// cached value is dropped and fetched anew, once. The caller checks the result with
    /// <see cref="Covers"/>: an issuer may answer with a value shorter-lived than asked.
    /// </summary>
    public static async ValueTask<CredentialLease> GetAsync(CredentialEntry entry, TimeSpan covering, TimeProvider time, CancellationToken cancellationToken)
    {
        var lease = await entry.GetAsync(cancellationToken).ConfigureAwait(false);
        if (lease.Outcome == CacheOutcome.Fetch || Covers(lease.Credential, covering, time))
        {
            // Just fetched: nothing fresher is to be had by asking again.
            return lease;
        }

        // Ask once more before dropping the value: a concurrent caller may have replaced it already,
        // and dropping that one would start a second fetch for nothing.
        var again = await entry.GetAsync(cancellationToken).ConfigureAwait(false);
        if (!ReferenceEquals(again.Credential, lease.Credential))
        {
            return again;
        }

        // The value expires within the window (a refresh ahead failed, or its lifetime is that short):
        // drop it, so this caller and those after it wait for one new fetch instead of using it.
        entry.Invalidate();
        return await entry.GetAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether <paramref name="credential"/> is still valid <paramref name="covering"/> from now.</summary>
    public static bool Covers(Credential credential, TimeSpan covering, TimeProvider time) =>
        credential.ExpiresAt is not { } expires || expires - time.GetUtcNow() >= covering;
}
