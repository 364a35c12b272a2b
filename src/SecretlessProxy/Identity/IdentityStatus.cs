using SecretlessProxy.Core;

namespace SecretlessProxy.Identity;

/// <summary>
/// The current state of the workload identity: a valid identity, or the reason there is none. The
/// reason is fit for the app's 503 problem response and for logs: it names what failed
/// ("the token expired at ...", "the issuer ... is not ..."), never the token.
/// </summary>
internal sealed class IdentityStatus
{
    private IdentityStatus(WorkloadIdentity? identity, string? failureReason)
    {
        Identity = identity;
        FailureReason = failureReason;
    }

    public WorkloadIdentity? Identity { get; }

    public string? FailureReason { get; }

    public bool IsValid => Identity is not null;

    public static IdentityStatus Valid(WorkloadIdentity identity) => new(identity, null);

    public static IdentityStatus Invalid(string reason) => new(null, reason);
}
