namespace SecretlessProxy.Core;

/// <summary>
/// How one access (an HTTP request, a database login) ended. The same name, from
/// <see cref="AccessOutcomeNames.ToWireName"/>, is the audit record's <c>outcome</c>, the span's
/// <c>secretless.outcome</c> and the <c>outcome</c> label of <c>secretless_proxy_requests_total</c>;
/// docs/architecture.md lists them.
/// </summary>
internal enum AccessOutcome
{
    /// <summary>Sent upstream with the policy's credential.</summary>
    Forwarded,

    /// <summary>No policy matched and the listener passes unmatched requests through: sent with nothing injected.</summary>
    PassedThrough,

    /// <summary>A database session logged in with the credential and handed to the app.</summary>
    Connected,

    /// <summary>Refused before policy: the request target is neither a path nor an absolute http(s) URL this listener takes.</summary>
    InvalidRequestTarget,

    /// <summary>Refused before policy: a route listener takes a path, not a full URL.</summary>
    AbsoluteFormRefused,

    /// <summary>Refused before policy: a forward listener needs an absolute http:// URL (or CONNECT).</summary>
    NotAProxyRequest,

    /// <summary>Refused before policy: a transparent listener serves only connections redirected to it.</summary>
    NotRedirected,

    /// <summary>Refused before policy: the request names another authority than its tunnel's (RFC 9110 section 15.5.20).</summary>
    MisdirectedRequest,

    /// <summary>Refused: the path reads differently to different upstreams (dot segments, backslashes, encoded slashes...).</summary>
    AmbiguousPath,

    /// <summary>Denied by policy: no policy matched, a condition failed, or the policy is for another kind of listener.</summary>
    Denied,

    /// <summary>Refused: the method would echo the credential back to the app (TRACE, TRACK).</summary>
    MethodRefused,

    /// <summary>A policy needs a valid workload identity and there is none now (transient).</summary>
    IdentityUnavailable,

    /// <summary>No valid credential can be had now (transient); nothing was sent.</summary>
    CredentialUnavailable,

    /// <summary>The listener's handshake deadline ran out while the identity or the credential was being fetched.</summary>
    HandshakeTimeout,

    /// <summary>The app went away before the access completed.</summary>
    ClientAborted,

    /// <summary>The body is larger than the policy's signer buffers (AwsSigV4 MaxBodyBytes); nothing was sent.</summary>
    PayloadTooLarge,

    /// <summary>The body could not be held for signing while other requests hold <c>Limits:SigningBufferBytes</c>.</summary>
    SigningBufferFull,

    /// <summary>The body alone is larger than <c>Limits:SigningBufferBytes</c>.</summary>
    SigningBodyTooLarge,

    /// <summary>The upstream could not be reached at all.</summary>
    UpstreamUnreachable,

    /// <summary>TLS with the upstream failed (refused, or a certificate that does not verify).</summary>
    UpstreamTlsFailed,

    /// <summary>Forwarding to the upstream failed, or it took too long.</summary>
    UpstreamFailed,

    /// <summary>The database server broke its protocol during the login.</summary>
    HandshakeFailed,

    /// <summary>The database server refused the login, or asked for a method the proxy does not speak.</summary>
    LoginFailed,

    /// <summary>An unverified database server asked for a weakened exchange (cleartext, MD5, few SCRAM iterations).</summary>
    WeakExchangeRefused,

    /// <summary>The database server asked for more SCRAM iterations than the proxy computes.</summary>
    ExcessiveWorkRefused,

    /// <summary>The login succeeded and the database server refused the session (no such database, too many connections).</summary>
    SessionRefused,

    /// <summary>The proxy itself failed; the app is told, the log has the exception type.</summary>
    ProxyError,
}
