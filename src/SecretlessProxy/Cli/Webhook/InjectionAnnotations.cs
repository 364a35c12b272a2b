namespace SecretlessProxy.Cli.Webhook;

/// <summary>The pod annotations the webhook reads (and the one it writes), documented in deploy/kubernetes/webhook/README.md.</summary>
internal static class InjectionAnnotations
{
    public const string Prefix = "secretless-proxy.io/";

    /// <summary><c>transparent</c>, <c>explicit</c> or <c>route</c>: asks for the proxy. Absent (or <c>false</c>): the pod is left alone.</summary>
    public const string Inject = Prefix + "inject";

    /// <summary>The ConfigMap (in the pod's namespace) whose <c>appsettings.json</c> configures the proxy. Required.</summary>
    public const string Config = Prefix + "config";

    /// <summary>
    /// <c>volume:/path[,volume:/path]</c>: volumes the pod declares (a Secret with the credential source's
    /// files) mounted read-only in the proxy only. The app container does not mount them, so it never sees them.
    /// </summary>
    public const string ProxyVolumeMounts = Prefix + "proxy-volume-mounts";

    /// <summary>The proxy listener's port: the Transparent listener's (default 15001) or the Forward listener's (default 3128).</summary>
    public const string Port = Prefix + "port";

    /// <summary>Transparent mode: comma-separated destination ports redirected to the proxy (default <c>80,443</c>).</summary>
    public const string RedirectPorts = Prefix + "redirect-ports";

    /// <summary>Written by the webhook (<c>injected</c>): the pod already has the proxy, so a second review changes nothing.</summary>
    public const string Status = Prefix + "status";

    public const string InjectedStatus = "injected";
}
