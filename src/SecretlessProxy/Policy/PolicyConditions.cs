namespace SecretlessProxy.Policy;

/// <summary>
/// The conditions of one policy beyond its destination match, checked on every request. Labels
/// compare the policy with the proxy's own labels, which are fixed per snapshot, so that outcome is
/// computed once at compile time.
/// </summary>
internal sealed class PolicyConditions
{
    public static readonly PolicyConditions None = new(null, null, null, null, labelsMatch: true, failedLabel: null);

    public PolicyConditions(CallerCondition? caller, IdentityCondition? identity, TimeWindow? when, IReadOnlyDictionary<string, string>? labels, bool labelsMatch, string? failedLabel)
    {
        Caller = caller;
        Identity = identity;
        When = when;
        Labels = labels;
        LabelsMatch = labelsMatch;
        FailedLabel = failedLabel;
        Rank = (caller is null ? 0 : 1) + (identity is null ? 0 : 1) + (when is null ? 0 : 1) + (labels is null ? 0 : 1);
    }

    public CallerCondition? Caller { get; }

    public IdentityCondition? Identity { get; }

    public TimeWindow? When { get; }

    public IReadOnlyDictionary<string, string>? Labels { get; }

    /// <summary>Whether the policy's labels all equal the proxy's.</summary>
    public bool LabelsMatch { get; }

    /// <summary>The first label (by name) that differs: named in the denial, its values are not.</summary>
    public string? FailedLabel { get; }

    /// <summary>How many kinds of condition the policy sets: a policy with more conditions is more specific.</summary>
    public int Rank { get; }

    /// <summary>Caller, identity and time; labels are settled per snapshot (<see cref="LabelsMatch"/>).</summary>
    public ConditionFailure Evaluate(in PolicyContext context)
    {
        if (Caller?.Evaluate(context.Caller) is { } c && c != ConditionFailure.None)
        {
            return c;
        }

        if (Identity?.Evaluate(context.Identity) is { } i && i != ConditionFailure.None)
        {
            return i;
        }

        return When?.Evaluate(context.Now) ?? ConditionFailure.None;
    }

    /// <summary>
    /// True when no request can satisfy both (so two otherwise equal policies are not ambiguous):
    /// one of them never applies here, or a condition both set has no common value.
    /// </summary>
    public bool IsDisjointFrom(PolicyConditions other)
    {
        if (!LabelsMatch || !other.LabelsMatch)
        {
            return true;
        }

        if (Caller is not null && other.Caller is not null && Caller.IsDisjointFrom(other.Caller))
        {
            return true;
        }

        if (Identity is not null && other.Identity is not null && Identity.IsDisjointFrom(other.Identity))
        {
            return true;
        }

        return When?.Days is { } a && other.When?.Days is { } b && When.Start is null && other.When.Start is null && !a.Overlaps(b);
    }
}
