using SecretlessProxy.Certificates;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;
using SecretlessProxy.Injection;

namespace SecretlessProxy.Runtime;

/// <summary>
/// The running proxy's current configuration snapshot, credential cache, workload identity and
/// readiness. Requests read <see cref="Snapshot"/> once at their start and use that version
/// throughout; a reload swaps in the next version atomically, so the very next request (on any
/// connection, kept-alive or tunnelled) is decided by it.
/// </summary>
internal sealed class ProxyState : IDisposable
{
    private volatile bool _ready;
    private volatile string _notReadyReason = "listeners are not bound yet";
    private volatile ProxyGeneration _current;
    private volatile ReloadStatus? _lastReload;

    private readonly WorkloadIdentityAccessor _identity;

    public ProxyState(ProxySnapshot snapshot, CredentialCache cache, LeafCertificateCache? leaves = null, WorkloadIdentityAccessor? identity = null)
    {
        _identity = identity ?? new WorkloadIdentityAccessor();
        Cache = cache;
        CredentialReference.BindAll(snapshot.Credentials, cache);
        _current = new ProxyGeneration(snapshot, cache.Entries, _identity.Identity);
        // After the references and the identity: a prefetch uses both.
        cache.SchedulePrefetches();
        Leaves = leaves;
        SigningBuffers = new SigningBufferBudget(snapshot.SigningBufferBytes);
    }

    /// <summary>
    /// Bytes of request bodies held for SigV4 signing, across every request of this proxy; its
    /// capacity follows <see cref="ProxySnapshot.SigningBufferBytes"/> of the current version.
    /// </summary>
    public SigningBufferBudget SigningBuffers { get; }

    /// <summary>Leaf certificates for intercepted tunnels; null when no Forward listener is configured.</summary>
    public LeafCertificateCache? Leaves { get; }

    public ProxySnapshot Snapshot => _current.Snapshot;

    /// <summary>The workload identity; null when the configuration has no <c>Identity</c>.</summary>
    public IWorkloadIdentitySource? Identity => _current.Identity;

    /// <summary>
    /// Raised after a reload made a new snapshot current, for what outlives a request: a blind
    /// tunnel is re-checked against the new version.
    /// </summary>
    internal event Action<ProxySnapshot>? SnapshotChanged;

    /// <summary>The applied version: read it once per request and use only it.</summary>
    internal ProxyGeneration Current => _current;

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
    /// Makes <paramref name="next"/> current. Requests that already read the previous generation
    /// finish with its policies and its credential entries (a dropped entry still works for them,
    /// with its old definition). Returns the previous identity when it was replaced.
    /// </summary>
    internal IWorkloadIdentitySource? Swap(ProxySnapshot next, IWorkloadIdentitySource? identity, ReloadStatus status, out IReadOnlyList<string> droppedCredentials)
    {
        droppedCredentials = Cache.Apply(next.Credentials);
        // Sources that build on other credentials lease them from this cache (kept entries keep theirs).
        CredentialReference.BindAll(next.Credentials, Cache);
        var previous = _identity.Identity;
        _identity.Identity = identity;
        // The one write that makes the new version current for every later request.
        _current = new ProxyGeneration(next, Cache.Entries, identity);
        // New entries' prefetches, now that their references and the new identity are in place.
        Cache.SchedulePrefetches();
        // Bodies already held keep their bytes; a lower capacity refuses new ones until they end.
        SigningBuffers.Capacity = next.SigningBufferBytes;
        _lastReload = status;
        SnapshotChanged?.Invoke(next);
        return ReferenceEquals(previous, identity) ? null : previous;
    }

    internal void RecordReload(ReloadStatus status) => _lastReload = status;

    public void Dispose()
    {
        Cache.Dispose();
        _identity.Identity?.Dispose();
        Snapshot.SpiffeUpstreams?.Dispose();
        Leaves?.Authority.Dispose();
        Leaves?.Dispose();
    }
}
