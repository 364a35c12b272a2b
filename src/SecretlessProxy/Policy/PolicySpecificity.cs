namespace SecretlessProxy.Policy;

/// <summary>
/// How specific a policy's match is for one request; the most specific matching policy wins.
/// Ordered: exact host over wildcard, longer wildcard suffix over shorter, longer path prefix over
/// shorter, then a policy that names methods over one that does not, then one that names ports,
/// then the one with more kinds of condition (Caller, Identity, When, Labels): a policy written for
/// one caller beats the general one for the same destination.
/// </summary>
internal readonly record struct PolicySpecificity(int HostRank, int HostLength, int PathPrefixLength, int MethodsRank, int PortsRank, int ConditionsRank)
    : IComparable<PolicySpecificity>
{
    public int CompareTo(PolicySpecificity other)
    {
        var c = HostRank.CompareTo(other.HostRank);
        if (c != 0) return c;
        c = HostLength.CompareTo(other.HostLength);
        if (c != 0) return c;
        c = PathPrefixLength.CompareTo(other.PathPrefixLength);
        if (c != 0) return c;
        c = MethodsRank.CompareTo(other.MethodsRank);
        if (c != 0) return c;
        c = PortsRank.CompareTo(other.PortsRank);
        return c != 0 ? c : ConditionsRank.CompareTo(other.ConditionsRank);
    }

    public static PolicySpecificity For(HostPattern host, string pathPrefix, bool hasMethods, bool hasPorts, int conditionsRank = 0) =>
        new(host.IsWildcard ? 1 : 2, host.IsWildcard ? host.Value.Length : 0, pathPrefix.Length, hasMethods ? 1 : 0, hasPorts ? 1 : 0, conditionsRank);
}
