using System.Collections.Frozen;
using SecretlessProxy.Core;

namespace SecretlessProxy.Policy;

/// <summary>A policy's <c>Identity</c> condition on the workload identity's claims (compared exactly, case-sensitively).</summary>
internal sealed class IdentityCondition
{
    public IdentityCondition(IReadOnlyCollection<string>? subjects, IReadOnlyCollection<string>? issuers, IReadOnlyCollection<string>? namespaces, IReadOnlyCollection<string>? serviceAccounts, IReadOnlyCollection<string>? audiences = null)
    {
        Audiences = audiences?.ToFrozenSet(StringComparer.Ordinal);
        Subjects = subjects?.ToFrozenSet(StringComparer.Ordinal);
        Issuers = issuers?.ToFrozenSet(StringComparer.Ordinal);
        Namespaces = namespaces?.ToFrozenSet(StringComparer.Ordinal);
        ServiceAccounts = serviceAccounts?.ToFrozenSet(StringComparer.Ordinal);
    }

    public FrozenSet<string>? Subjects { get; }

    public FrozenSet<string>? Issuers { get; }

    public FrozenSet<string>? Audiences { get; }

    public FrozenSet<string>? Namespaces { get; }

    public FrozenSet<string>? ServiceAccounts { get; }

    public ConditionFailure Evaluate(WorkloadIdentity? identity)
    {
        if (identity is null)
        {
            return ConditionFailure.IdentityUnavailable;
        }

        if (!Allows(Subjects, identity.Subject))
        {
            return ConditionFailure.IdentitySubject;
        }

        if (!Allows(Issuers, identity.Issuer))
        {
            return ConditionFailure.IdentityIssuer;
        }

        if (Audiences is not null && !identity.Audiences.Any(Audiences.Contains))
        {
            return ConditionFailure.IdentityAudience;
        }

        if (!Allows(Namespaces, identity.KubernetesNamespace))
        {
            return ConditionFailure.IdentityNamespace;
        }

        return Allows(ServiceAccounts, identity.ServiceAccount) ? ConditionFailure.None : ConditionFailure.IdentityServiceAccount;
    }

    public bool IsDisjointFrom(IdentityCondition other) =>
        CallerCondition.Disjoint(Subjects, other.Subjects) || CallerCondition.Disjoint(Issuers, other.Issuers) ||
        CallerCondition.Disjoint(Audiences, other.Audiences) ||
        CallerCondition.Disjoint(Namespaces, other.Namespaces) || CallerCondition.Disjoint(ServiceAccounts, other.ServiceAccounts);

    private static bool Allows(FrozenSet<string>? allowed, string? value) => allowed is null || (value is not null && allowed.Contains(value));
}
