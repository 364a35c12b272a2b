namespace SecretlessProxy.Policy;

/// <summary>
/// The outcome of evaluating a request. Instances are immutable and precomputed (one per policy,
/// one per unmatched behaviour) so that deciding allocates nothing on the request path.
/// </summary>
public sealed class PolicyDecision
{
    public static readonly PolicyDecision NoPolicyDenied = new(DecisionKind.Deny, null, "no policy matches this request");

    public static readonly PolicyDecision NoPolicyPassThrough = new(DecisionKind.PassThrough, null, "no policy matches this request; passed through");

    private PolicyDecision(DecisionKind kind, CompiledPolicy? policy, string reason)
    {
        Kind = kind;
        Policy = policy;
        Reason = reason;
    }

    public DecisionKind Kind { get; }

    /// <summary>The policy that allowed the request; null for deny and pass-through.</summary>
    public CompiledPolicy? Policy { get; }

    /// <summary>A reason fit for an operator and for the app's problem response: it names, never reveals.</summary>
    public string Reason { get; }

    /// <summary>Lower-case name used in spans and logs.</summary>
    public string Name => Kind switch
    {
        DecisionKind.Allow => "allow",
        DecisionKind.Deny => "deny",
        _ => "passthrough",
    };

    internal static PolicyDecision AllowFor(CompiledPolicy policy) => new(DecisionKind.Allow, policy, "allowed by policy " + policy.Name);
}
