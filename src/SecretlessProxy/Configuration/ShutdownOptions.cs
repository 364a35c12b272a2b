using SecretlessProxy.Runtime;

namespace SecretlessProxy.Configuration;

/// <summary>How the proxy stops (SIGTERM, Ctrl-C or <c>POST /quitquitquit</c>).</summary>
internal sealed class ShutdownOptions
{
    /// <summary>The proxy's default drain: 5 s inside Kubernetes' default 30 s grace period.</summary>
    public static readonly TimeSpan DefaultDrainTimeout = ProxySnapshot.DefaultDrainTimeout;

    /// <summary>
    /// How long requests in flight may take to finish once the proxy stops accepting new
    /// connections; whatever is still running then is aborted. Keep it below the pod's
    /// <c>terminationGracePeriodSeconds</c>, or the kubelet kills the proxy first.
    /// </summary>
    public TimeSpan? DrainTimeout { get; set; }
}
