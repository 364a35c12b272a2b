using SecretlessProxy.Core;

namespace SecretlessProxy.Policy;

/// <summary>
/// What a request's conditions are checked against besides its destination: the attested caller,
/// the workload identity (null when none is configured or it is not valid now) and the time.
/// </summary>
internal readonly record struct PolicyContext(Caller Caller, WorkloadIdentity? Identity, DateTimeOffset Now)
{
    public static PolicyContext Anonymous(DateTimeOffset now) => new(Caller.Unknown, null, now);
}
