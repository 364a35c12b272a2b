using SecretlessProxy.Listeners.Database;

namespace SecretlessProxy.Listeners;

internal sealed class ListenerOptions
{
    /// <summary>
    /// <c>Route</c>: requests to this listener go to <see cref="Upstream"/>. <c>Forward</c>: an
    /// HTTP_PROXY-style forward proxy (absolute-form requests and CONNECT tunnels). <c>Postgres</c>:
    /// PostgreSQL connections, logged in upstream with <see cref="Credential"/>.
    /// </summary>
    public string? Mode { get; set; }

    /// <summary>The address the listener binds, for example <c>http://127.0.0.1:8081</c>.</summary>
    public string? Url { get; set; }

    /// <summary>
    /// Route mode: the origin every request is forwarded to; it is also the destination that policy
    /// matches. Postgres mode: the database server as <c>host:port</c>.
    /// </summary>
    public string? Upstream { get; set; }

    /// <summary>Overrides the global <c>Unmatched</c> for this listener.</summary>
    public string? Unmatched { get; set; }

    /// <summary>Forward mode: ports a CONNECT may name. Default 443.</summary>
    public int[]? AllowedConnectPorts { get; set; }

    /// <summary>Record the request's query string on spans (off by default: queries often carry personal data).</summary>
    public bool? RecordQuery { get; set; }

    /// <summary>With <see cref="RecordQuery"/>: parameters whose values are replaced by REDACTED.</summary>
    public string[]? RedactQueryParameters { get; set; }

    /// <summary>Postgres mode: the credential that logs in upstream (its user name and its secret as the password).</summary>
    public string? Credential { get; set; }

    /// <summary>Postgres mode: TLS toward the database server.</summary>
    public DatabaseTlsOptions? Tls { get; set; }

    /// <summary>
    /// Postgres mode: answer the app's SSLRequest with TLS, with a certificate from the local CA
    /// (for the name the app sends as SNI, else the listener's address). Default false: 'N', the
    /// app's side being loopback.
    /// </summary>
    public bool? AcceptTls { get; set; }

    /// <summary>
    /// Every mode: how long a new connection may take to get from accept to its first HTTP request
    /// (CONNECT head, intercepted TLS handshake, transparent first bytes) or, in Postgres mode, to a
    /// logged-in session (startup, TLS, connecting and logging in at the database). Default 10 s.
    /// </summary>
    public TimeSpan? HandshakeTimeout { get; set; }

    /// <summary>Every mode: connections open at once on this listener; one more is refused. Default 1024.</summary>
    public int? MaxConnections { get; set; }
}
