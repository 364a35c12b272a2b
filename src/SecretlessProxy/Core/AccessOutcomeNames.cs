namespace SecretlessProxy.Core;

/// <summary>The one mapping from <see cref="AccessOutcome"/> to the name audit, metrics, spans and docs use.</summary>
internal static class AccessOutcomeNames
{
    /// <summary>Kebab-case, stable: operators alert and dashboards filter on these.</summary>
    public static string ToWireName(this AccessOutcome outcome) => outcome switch
    {
        AccessOutcome.Forwarded => "forwarded",
        AccessOutcome.PassedThrough => "passed-through",
        AccessOutcome.Connected => "connected",
        AccessOutcome.InvalidRequestTarget => "invalid-request-target",
        AccessOutcome.AbsoluteFormRefused => "absolute-form-refused",
        AccessOutcome.NotAProxyRequest => "not-a-proxy-request",
        AccessOutcome.NotRedirected => "not-redirected",
        AccessOutcome.MisdirectedRequest => "misdirected-request",
        AccessOutcome.AmbiguousPath => "ambiguous-path",
        AccessOutcome.Denied => "denied",
        AccessOutcome.MethodRefused => "method-refused",
        AccessOutcome.IdentityUnavailable => "identity-unavailable",
        AccessOutcome.CredentialUnavailable => "credential-unavailable",
        AccessOutcome.HandshakeTimeout => "handshake-timeout",
        AccessOutcome.ClientAborted => "client-aborted",
        AccessOutcome.PayloadTooLarge => "payload-too-large",
        AccessOutcome.SigningBufferFull => "signing-buffer-full",
        AccessOutcome.SigningBodyTooLarge => "signing-body-too-large",
        AccessOutcome.UpstreamUnreachable => "upstream-unreachable",
        AccessOutcome.UpstreamTlsFailed => "upstream-tls-failed",
        AccessOutcome.UpstreamFailed => "upstream-failed",
        AccessOutcome.HandshakeFailed => "handshake-failed",
        AccessOutcome.LoginFailed => "login-failed",
        AccessOutcome.WeakExchangeRefused => "weak-exchange-refused",
        AccessOutcome.ExcessiveWorkRefused => "excessive-work-refused",
        AccessOutcome.SessionRefused => "session-refused",
        AccessOutcome.ProxyError => "proxy-error",
        _ => throw new ArgumentOutOfRangeException(nameof(outcome)),
    };

    /// <summary>The access went through: the app talks to the upstream.</summary>
    public static bool IsSuccess(this AccessOutcome outcome) =>
        outcome is AccessOutcome.Forwarded or AccessOutcome.PassedThrough or AccessOutcome.Connected;

    /// <summary>
    /// Something failed (an identity, a credential, the upstream, the proxy), as opposed to a request
    /// the proxy refused on purpose: marks the span as an error.
    /// </summary>
    public static bool IsFailure(this AccessOutcome outcome) => outcome is
        AccessOutcome.IdentityUnavailable or AccessOutcome.CredentialUnavailable or AccessOutcome.HandshakeTimeout or
        AccessOutcome.UpstreamUnreachable or AccessOutcome.UpstreamTlsFailed or AccessOutcome.UpstreamFailed or
        AccessOutcome.HandshakeFailed or AccessOutcome.LoginFailed or AccessOutcome.WeakExchangeRefused or
        AccessOutcome.ExcessiveWorkRefused or AccessOutcome.SessionRefused or AccessOutcome.ProxyError;
}
