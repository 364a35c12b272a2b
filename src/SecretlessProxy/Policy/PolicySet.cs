using SecretlessProxy.Core;

namespace SecretlessProxy.Policy;

/// <summary>The immutable set of policies of one configuration snapshot, evaluated for every request.</summary>
internal sealed class PolicySet
{
    private readonly HashSet<string> _namedLogins;

    public PolicySet(IReadOnlyList<CompiledPolicy> policies)
    {
        Policies = policies;
        UsesCaller = policies.Any(p => p.Conditions.Caller is not null);
        _namedLogins = new HashSet<string>(
            policies.Where(p => p.Injection.Target == InjectionTarget.DatabaseLogin && p.CredentialName.Length > 0).Select(p => p.CredentialName),
            StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Whether any policy has a Caller condition, so deciding needs the attested calling process.</summary>
    public bool UsesCaller { get; }

    public IReadOnlyList<CompiledPolicy> Policies { get; }

    /// <summary>
    /// True when some policy could match a request to this host and port (whatever its method and
    /// path): the test for intercepting a CONNECT tunnel rather than relaying it blind.
    /// </summary>
    public bool CanMatchHost(string host, int port)
    {
        foreach (var policy in Policies)
        {
            // A policy written for another environment (Labels) does not exist here.
            if ((policy.Ports is not null && !policy.Ports.Contains(port)) || !policy.Conditions.LabelsMatch)
            {
                continue;
            }

            foreach (var pattern in policy.Hosts)
            {
                if (pattern.Matches(host))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>
    /// Picks the most specific policy whose destination match and conditions both hold. Validation
    /// guarantees that two overlapping policies never tie, so the winner does not depend on
    /// declaration order. When policies match the destination but none of their conditions hold,
    /// the request is denied, naming the failed condition of the most specific one: a destination
    /// some policy covers is never passed through just because this caller is not allowed. A
    /// policy whose Labels differ from the proxy's is for another environment and counts as absent
    /// (pass-through stays pass-through); only a plain denial names its label.
    /// </summary>
    public PolicyDecision Evaluate(in RequestDestination destination, UnmatchedBehavior unmatched, in PolicyContext context) =>
        Evaluate(destination, unmatched, context, login: null);

    /// <summary>
    /// Decides a database connection through a listener that logs in with credential
    /// <paramref name="login"/>. Only the DatabaseLogin policies for that login take part: those
    /// that name it, or, when no DatabaseLogin policy names it, those that name no credential. So a
    /// caller refused by the policies written for an admin login is refused, and never admitted with
    /// that login by a wider policy written without one (the read-only listener's). Policies with an
    /// HTTP injection take part as in <see cref="Evaluate(in RequestDestination, UnmatchedBehavior, in PolicyContext)"/>
    /// (the listener refuses them). No unmatched pass-through: no policy, no connection.
    /// </summary>
    public PolicyDecision EvaluateLogin(in RequestDestination destination, string login, in PolicyContext context)
    {
        ArgumentNullException.ThrowIfNull(login);
        return Evaluate(destination, UnmatchedBehavior.Deny, context, login);
    }

    private PolicyDecision Evaluate(in RequestDestination destination, UnmatchedBehavior unmatched, in PolicyContext context, string? login)
    {
        CompiledPolicy? best = null;
        PolicySpecificity bestSpecificity = default;
        CompiledPolicy? refused = null;
        PolicySpecificity refusedSpecificity = default;
        var refusedBecause = ConditionFailure.None;
        CompiledPolicy? otherEnvironment = null;
        CompiledPolicy? otherLogin = null;
        foreach (var policy in Policies)
        {
            if (policy.Match(destination) is not { } specificity)
            {
                continue;
            }

            if (login is not null && policy.Injection.Target == InjectionTarget.DatabaseLogin && !IsForLogin(policy, login))
            {
                otherLogin ??= policy;
                continue;
            }

            if (!policy.Conditions.LabelsMatch)
            {
                otherEnvironment ??= policy;
                continue;
            }

            if (best is not null && specificity.CompareTo(bestSpecificity) <= 0)
            {
                continue;
            }

            var failure = policy.Conditions.Evaluate(context);
            if (failure == ConditionFailure.None)
            {
                best = policy;
                bestSpecificity = specificity;
            }
            else if (refused is null || specificity.CompareTo(refusedSpecificity) > 0)
            {
                refused = policy;
                refusedSpecificity = specificity;
                refusedBecause = failure;
            }
        }

        if (best is not null)
        {
            return best.AllowDecision;
        }

        if (refused is not null)
        {
            return refused.DenialFor(refusedBecause);
        }

        if (unmatched == UnmatchedBehavior.PassThrough)
        {
            return PolicyDecision.NoPolicyPassThrough;
        }

        if (unmatched == UnmatchedBehavior.Observe)
        {
            return PolicyDecision.NoPolicyObserved;
        }

        if (otherLogin is not null)
        {
            return PolicyDecision.DeniedForOtherLogin(otherLogin, login!, otherLogin.CredentialName.Length > 0);
        }

        return otherEnvironment?.DenialFor(ConditionFailure.Label) ?? PolicyDecision.NoPolicyDenied;
    }

    /// <summary>
    /// A policy naming a credential is for the listener logging in with it; one naming none is for
    /// any listener whose login no policy names (a named login is governed by its own policies only).
    /// </summary>
    private bool IsForLogin(CompiledPolicy policy, string login) =>
        policy.CredentialName.Length > 0
            ? string.Equals(policy.CredentialName, login, StringComparison.OrdinalIgnoreCase)
            : !_namedLogins.Contains(login);
}
