namespace SecretlessProxy.Policy;

/// <summary>
/// The outcome of evaluating a request. Instances are immutable and precomputed (one per policy,
/// one per unmatched behaviour) so that deciding allocates nothing on the request path.
/// </summary>
internal sealed class PolicyDecision
{
    public static readonly PolicyDecision NoPolicyDenied = new(DecisionKind.Deny, null, "no policy matches this request");

    public static readonly PolicyDecision NoPolicyPassThrough = new(DecisionKind.PassThrough, null, "no policy matches this request; passed through");

    /// <summary>Unmatched Observe: what enforcing would deny, passed through with nothing injected.</summary>
    public static readonly PolicyDecision NoPolicyObserved = new(DecisionKind.PassThrough, null, "no policy matches this request (Unmatched Observe: passed through with nothing injected)", observed: true);

    private PolicyDecision(DecisionKind kind, CompiledPolicy? policy, string reason, ConditionFailure failure = ConditionFailure.None, bool observed = false)
    {
        Observed = observed;
        Kind = kind;
        Policy = policy;
        Reason = reason;
        Failure = failure;
    }

    public DecisionKind Kind { get; }

    /// <summary>
    /// The policy that allowed the request, or whose conditions turned it away (the most specific
    /// one); null when no policy matched the destination.
    /// </summary>
    public CompiledPolicy? Policy { get; }

    /// <summary>The condition that failed, for a denial by a policy's conditions.</summary>
    public ConditionFailure Failure { get; }

    /// <summary>
    /// The policy needs a workload identity and none is valid now: a transient state the app sees as
    /// 503 (like an unavailable credential), not a 403.
    /// </summary>
    public bool AwaitsIdentity => !Observed && Failure == ConditionFailure.IdentityUnavailable;

    /// <summary>
    /// Decided in observe mode (a policy's <c>Mode: Observe</c>, or <c>Unmatched: Observe</c>): an
    /// allow injects as enforcing would, a denial passes through with nothing injected, and both are
    /// recorded as what enforcing would do (<c>would-allow</c>, <c>would-deny</c>).
    /// </summary>
    public bool Observed { get; }

    /// <summary>A reason fit for an operator and for the app's problem response: it names, never reveals.</summary>
    public string Reason { get; }

    /// <summary>Lower-case name used in spans and logs.</summary>
    public string Name => Kind switch
    {
        DecisionKind.Allow => Observed ? WouldAllow : "allow",
        DecisionKind.Deny => "deny",
        _ => Observed ? WouldDeny : "passthrough",
    };

    public const string WouldAllow = "would-allow";

    public const string WouldDeny = "would-deny";

    internal static PolicyDecision AllowFor(CompiledPolicy policy) => policy.Observe
        ? new(DecisionKind.Allow, policy, "would be allowed by policy " + policy.Name + " (observe mode)", observed: true)
        : new(DecisionKind.Allow, policy, "allowed by policy " + policy.Name);

    /// <summary>
    /// A database connection matched only policies for other listeners' logins: one that names
    /// another credential, or one naming none while policies name this listener's credential.
    /// Built per connection (rare), not precomputed.
    /// </summary>
    internal static PolicyDecision DeniedForOtherLogin(CompiledPolicy policy, string login, bool namesCredential) =>
        new(DecisionKind.Deny, policy, namesCredential
            ? "policy '" + policy.Name + "' is for logins with credential '" + policy.CredentialName + "', and this listener logs in with '" + login + "'"
            : "policy '" + policy.Name + "' names no credential, and logins with '" + login + "' are admitted only by the policies that name it");

    /// <summary>A denial that names the failed condition and never its values (allowed uids, hashes, subjects).</summary>
    internal static PolicyDecision DeniedBy(CompiledPolicy policy, ConditionFailure failure, string? label)
    {
        var what = failure switch
        {
            ConditionFailure.CallerUnknown => "its Caller condition needs an attested calling process, and this caller could not be identified",
            ConditionFailure.CallerUid => "its Caller condition does not allow the calling process's uid",
            ConditionFailure.CallerExecutable => "its Caller condition does not allow the calling executable",
            ConditionFailure.CallerExecutableHash => "its Caller condition does not allow the calling executable's SHA-256",
            ConditionFailure.IdentityUnavailable => "its Identity condition needs a valid workload identity, and there is none",
            ConditionFailure.IdentitySubject => "its Identity condition does not allow the workload identity's subject",
            ConditionFailure.IdentityIssuer => "its Identity condition does not allow the workload identity's issuer",
            ConditionFailure.IdentityAudience => "its Identity condition does not allow the workload identity's audience",
            ConditionFailure.IdentityNamespace => "its Identity condition does not allow the workload identity's namespace",
            ConditionFailure.IdentityServiceAccount => "its Identity condition does not allow the workload identity's service account",
            ConditionFailure.Day => "its When condition does not allow today",
            ConditionFailure.Hours => "its When condition does not allow this time of day",
            ConditionFailure.Label => "its label '" + label + "' differs from this proxy's",
            _ => throw new ArgumentOutOfRangeException(nameof(failure)),
        };
        return policy.Observe
            ? new(DecisionKind.PassThrough, policy, "policy " + policy.Name + " would not allow this request: " + what + " (observe mode: passed through with nothing injected)", failure, observed: true)
            : new(DecisionKind.Deny, policy, "policy " + policy.Name + " does not allow this request: " + what, failure);
    }
}
