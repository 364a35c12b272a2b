namespace SecretlessProxy.Governance;

/// <summary>The codes of <see cref="InventoryFinding"/>, stable for scripts and alerts.</summary>
internal static class FindingCodes
{
    /// <summary>A policy injects the credential for any calling process and any workload identity.</summary>
    public const string NoCallerOrIdentityCondition = "no-caller-or-identity-condition";

    /// <summary>A policy matches <c>*.suffix</c>: every host below it, present and future.</summary>
    public const string WildcardHost = "wildcard-host";

    /// <summary>A policy names no methods: writes and deletes as much as reads.</summary>
    public const string EveryMethod = "every-method";

    /// <summary>A file's secret never expires on its own: a copy stays good until someone rotates it.</summary>
    public const string LongLivedFileSecret = "long-lived-file-secret";

    /// <summary>
    /// The credential can be injected through a listener with <c>Unmatched: PassThrough</c>: the app
    /// that gets it injected also reaches every host no policy covers (CONNECT tunnels relayed
    /// blind), so what it obtained with the credential can leave unchecked.
    /// </summary>
    public const string PassThroughListener = "pass-through-listener";

    /// <summary>The credential names no business or technical owner.</summary>
    public const string NoOwner = "no-owner";
}
