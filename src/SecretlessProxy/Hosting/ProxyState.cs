using SecretlessProxy.Certificates;
using SecretlessProxy.Configuration;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Hosting;

/// <summary>
/// The running proxy's current configuration snapshot, credential cache, workload identity and
/// readiness. Requests read <see cref="Snapshot"/> once at their start and use that version
/// throughout; a reload swaps in the next version atomically, so the very next request (on any
/// connection, kept-alive or tunnelled) is decided by it.
/// </summary>
public sealed class ProxyState : IDisposable
{
    private volatile bool _ready;
    private volatile string _notReadyReason = "listeners are not bound yet";
    private volatile ProxySnapshot _snapshot;
    private volatile ReloadStatus? _lastReload;

    private readonly WorkloadIdentityAccessor _identity;

    public ProxyState(ProxySnapshot snapshot, CredentialCache cache, LeafCertificateCache? leaves = null, WorkloadIdentityAccessor? identity = null)
    {
        _snapshot = snapshot;
        _identity = identity ?? new WorkloadIdentityAccessor();
        Cache = cache;
        Leaves = leaves;
    }

    /// <summary>Leaf certificates for intercepted tunnels; null when no Forward listener is configured.</summary>
    public LeafCertificateCache? Leaves { get; }

    public ProxySnapshot Snapshot => _snapshot;

    /// <summary>The workload identity; null when the configuration has no <c>Identity</c>.</summary>
    public TokenFileIdentity? Identity => _identity.Identity;

    public CredentialCache Cache { get; }

    /// <summary>The outcome of the last reload attempt (null before the first).</summary>
    public ReloadStatus? LastReload => _lastReload;

    public bool IsReady => _ready;

    public string NotReadyReason => _notReadyReason;

    public void MarkReady() => _ready = true;

    public void MarkNotReady(string reason)
    {
        _notReadyReason = reason;
        _ready = false;
    }

    /// <summary>
    /// Makes <paramref name="next"/> current. The credential set is applied first, so a request that
    /// sees the new policies also sees the new credential definitions. Returns the previous identity
    /// when it was replaced (the caller disposes it once requests using it are done).
    /// </summary>
    internal TokenFileIdentity? Swap(ProxySnapshot next, TokenFileIdentity? identity, ReloadStatus status, out IReadOnlyList<string> droppedCredentials)
    {
        droppedCredentials = Cache.Apply(next.Credentials);
        var previous = _identity.Identity;
        _identity.Identity = identity;
        _snapshot = next;
        _lastReload = status;
        return ReferenceEquals(previous, identity) ? null : previous;
    }

    internal void RecordReload(ReloadStatus status) => _lastReload = status;

    public void Dispose()
    {
        Cache.Dispose();
        _identity.Identity?.Dispose();
        Leaves?.Authority.Dispose();
        Leaves?.Dispose();
    }
}
