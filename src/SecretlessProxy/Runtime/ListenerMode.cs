namespace SecretlessProxy.Runtime;

public enum ListenerMode
{
    /// <summary>An explicit localhost route: every request goes to the listener's configured upstream.</summary>
    Route,

    /// <summary>
    /// A forward proxy for apps that honour HTTP_PROXY/HTTPS_PROXY: absolute-form http:// requests,
    /// and CONNECT tunnels that are intercepted with the local CA when a policy can match the host.
    /// </summary>
    Forward,

    /// <summary>
    /// PostgreSQL wire protocol: the app connects with no password and the proxy logs in to the
    /// configured database server with a just-in-time credential, then splices bytes.
    /// </summary>
    Postgres,

    /// <summary>
    /// Outbound connections redirected here by iptables (see <c>secretless-proxy iptables</c>): the
    /// original destination from SO_ORIGINAL_DST, the host from the TLS SNI or the HTTP Host, then
    /// intercepted, relayed blind or refused as in forward mode.
    /// </summary>
    Transparent,
}
