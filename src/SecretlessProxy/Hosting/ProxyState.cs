using SecretlessProxy.Certificates;
using SecretlessProxy.Configuration;
using SecretlessProxy.Credentials;

namespace SecretlessProxy.Hosting;

/// <summary>
/// The running proxy's current configuration snapshot, credential cache and readiness. Requests
/// read <see cref="Snapshot"/> once at their start and use that version throughout.
/// </summary>
public sealed class ProxyState : IDisposable
{
    private volatile bool _ready;
    private volatile string _notReadyReason = "listeners are not bound yet";

    public ProxyState(ProxySnapshot snapshot, CredentialCache cache, LeafCertificateCache? leaves = null)
    {
        Snapshot = snapshot;
        Cache = cache;
        Leaves = leaves;
    }

    /// <summary>Leaf certificates for intercepted tunnels; null when no Forward listener is configured.</summary>
    public LeafCertificateCache? Leaves { get; }

    public ProxySnapshot Snapshot { get; }

    public CredentialCache Cache { get; }

    public bool IsReady => _ready;

    public string NotReadyReason => _notReadyReason;

    public void MarkReady() => _ready = true;

    public void MarkNotReady(string reason)
    {
        _notReadyReason = reason;
        _ready = false;
    }

    public void Dispose()
    {
        Cache.Dispose();
        Leaves?.Authority.Dispose();
        Leaves?.Dispose();
    }
}
