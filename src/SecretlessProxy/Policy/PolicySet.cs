namespace SecretlessProxy.Policy;

/// <summary>The immutable set of policies of one configuration snapshot, evaluated for every request.</summary>
public sealed class PolicySet
{
    public PolicySet(IReadOnlyList<CompiledPolicy> policies)
    {
        Policies = policies;
        UsesCaller = policies.Any(p => p.Conditions.Caller is not null);
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
    public PolicyDecision Evaluate(in RequestDestination destination, UnmatchedBehavior unmatched, in PolicyContext context)
    {
        CompiledPolicy? best = null;
        PolicySpecificity bestSpecificity = default;
        CompiledPolicy? refused = null;
        PolicySpecificity refusedSpecificity = default;
        var refusedBecause = ConditionFailure.None;
        CompiledPolicy? otherEnvironment = null;
        foreach (var policy in Policies)
        {
            if (policy.Match(destination) is not { } specificity)
            {
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

        return otherEnvironment?.DenialFor(ConditionFailure.Label) ?? PolicyDecision.NoPolicyDenied;
    }
}
