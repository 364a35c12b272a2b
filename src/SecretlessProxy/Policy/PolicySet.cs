namespace SecretlessProxy.Policy;

/// <summary>The immutable set of policies of one configuration snapshot, evaluated for every request.</summary>
public sealed class PolicySet
{
    public PolicySet(IReadOnlyList<CompiledPolicy> policies)
    {
        Policies = policies;
    }

    public IReadOnlyList<CompiledPolicy> Policies { get; }

    /// <summary>
    /// True when some policy could match a request to this host and port (whatever its method and
    /// path): the test for intercepting a CONNECT tunnel rather than relaying it blind.
    /// </summary>
    public bool CanMatchHost(string host, int port)
    {
        foreach (var policy in Policies)
        {
            if (policy.Ports is not null && !policy.Ports.Contains(port))
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
    /// Picks the most specific matching policy. Validation guarantees that two overlapping policies
    /// never tie, so the winner does not depend on declaration order.
    /// </summary>
    public PolicyDecision Evaluate(in RequestDestination destination, UnmatchedBehavior unmatched)
    {
        CompiledPolicy? best = null;
        PolicySpecificity bestSpecificity = default;
        foreach (var policy in Policies)
        {
            var s = policy.Match(destination);
            if (s is { } specificity && (best is null || specificity.CompareTo(bestSpecificity) > 0))
            {
                best = policy;
                bestSpecificity = specificity;
            }
        }

        if (best is not null)
        {
            return best.AllowDecision;
        }

        return unmatched == UnmatchedBehavior.PassThrough ? PolicyDecision.NoPolicyPassThrough : PolicyDecision.NoPolicyDenied;
    }
}
