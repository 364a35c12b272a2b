namespace SecretlessProxy.Policy;

/// <summary>
/// How specific a policy's match is for one request; the most specific matching policy wins.
/// Ordered: exact host over wildcard, longer wildcard suffix over shorter, longer path prefix over
/// shorter, then a policy that names methods over one that does not, then one that names ports.
/// </summary>
public readonly record struct PolicySpecificity(int HostRank, int HostLength, int PathPrefixLength, int MethodsRank, int PortsRank)
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
        return c != 0 ? c : PortsRank.CompareTo(other.PortsRank);
    }

    public static PolicySpecificity For(HostPattern host, string pathPrefix, bool hasMethods, bool hasPorts) =>
        new(host.IsWildcard ? 1 : 2, host.IsWildcard ? host.Value.Length : 0, pathPrefix.Length, hasMethods ? 1 : 0, hasPorts ? 1 : 0);
}
