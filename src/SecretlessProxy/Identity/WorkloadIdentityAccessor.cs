namespace SecretlessProxy.Identity;

/// <summary>
/// The running proxy's current workload identity, for credential sources that present it (an
/// OAuth2 client assertion today; token exchange and cloud federation build on it). One per
/// proxy: sources are compiled before the identity exists and outlive reloads that replace it,
/// so they hold this and ask it at fetch time.
/// </summary>
internal sealed class WorkloadIdentityAccessor
{
    private volatile IWorkloadIdentitySource? _identity;

    /// <summary>Null when the configuration has no <c>Identity</c>.</summary>
    public IWorkloadIdentitySource? Identity
    {
        get => _identity;
        internal set => _identity = value;
    }

    /// <summary>The current identity, or why there is none (a reason fit for a fetch error: never the token).</summary>
    public ValueTask<IdentityStatus> GetAsync(CancellationToken cancellationToken) =>
        _identity is { } identity
            ? identity.GetAsync(cancellationToken)
            : ValueTask.FromResult(IdentityStatus.Invalid("no workload identity is configured (SecretlessProxy:Identity)"));
}
