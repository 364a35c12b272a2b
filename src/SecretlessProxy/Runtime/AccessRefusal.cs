using SecretlessProxy.Core;

namespace SecretlessProxy.Runtime;

/// <summary>
/// An access that does not go on, already recorded (audit, metrics, span). The listener tells the
/// app in its protocol: a problem response with <see cref="Status"/>, or the database's error.
/// </summary>
internal sealed class AccessRefusal : AccessDecision
{
    public AccessRefusal(AccessOutcome outcome, string reason)
    {
        Outcome = outcome;
        Reason = reason;
    }

    public AccessOutcome Outcome { get; }

    /// <summary>Fit for the app and the audit trail: names policies, credentials and conditions, never a value.</summary>
    public string Reason { get; }

    /// <summary>The HTTP status this refusal calls for; other protocols map it to their own codes by <see cref="Outcome"/>.</summary>
    public int Status => StatusOf(Outcome);

    /// <summary>The app was not told anything: it went away.</summary>
    public bool AppIsGone => Outcome == AccessOutcome.ClientAborted;

    private static int StatusOf(AccessOutcome outcome) => outcome switch
    {
        AccessOutcome.Denied => 403,
        AccessOutcome.MethodRefused => 405,
        AccessOutcome.MisdirectedRequest => 421,
        AccessOutcome.PayloadTooLarge or AccessOutcome.SigningBodyTooLarge => 413,
        AccessOutcome.IdentityUnavailable or AccessOutcome.CredentialUnavailable or AccessOutcome.HandshakeTimeout or AccessOutcome.SigningBufferFull => 503,
        AccessOutcome.ProxyError => 500,
        // The convention (nginx) for a request whose client closed the connection; nothing is sent.
        AccessOutcome.ClientAborted => 499,
        AccessOutcome.InvalidRequestTarget or AccessOutcome.AbsoluteFormRefused or AccessOutcome.NotAProxyRequest or
            AccessOutcome.NotRedirected or AccessOutcome.AmbiguousPath => 400,
        _ => 502,
    };
}
