namespace SecretlessProxy.Cli.Webhook;

/// <summary>How the app reaches the injected proxy: the kustomize base and its two overlays.</summary>
internal enum InjectionMode
{
    /// <summary>The app calls the proxy's Route listener itself (the base): sidecar only.</summary>
    Route,

    /// <summary>The app gets HTTP(S)_PROXY and trusts the local CA (overlays/explicit).</summary>
    Explicit,

    /// <summary>iptables redirects the app's outbound ports; the app trusts the local CA (overlays/transparent).</summary>
    Transparent,
}
