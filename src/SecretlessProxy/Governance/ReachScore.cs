using SecretlessProxy.Policy;

namespace SecretlessProxy.Governance;

/// <summary>
/// How wide one policy lets a credential go, as one number, so entries can be ranked worst first.
/// Deliberately simple (docs/governance.md states it): the product of
/// <list type="bullet">
/// <item>hosts: 1 per exact host, 10 per wildcard;</item>
/// <item>methods: 4 for every method, 2 when a named method writes, 1 for GET/HEAD/OPTIONS only (database logins: 1);</item>
/// <item>paths: 2 without a PathPrefix, 1 with one;</item>
/// <item>who: 4 with neither a Caller nor an Identity condition, 2 with one, 1 with both;</item>
/// <item>listeners: how many can inject it (at least 1).</item>
/// </list>
/// A credential's score is the sum over its policies.
/// </summary>
internal static class ReachScore
{
    private static readonly HashSet<string> ReadMethods = new(StringComparer.Ordinal) { "GET", "HEAD", "OPTIONS" };

    public static int For(CompiledPolicy policy, bool database, int listeners)
    {
        var hosts = policy.Hosts.Sum(h => h.IsWildcard ? 10 : 1);
        var methods = database ? 1 : policy.Methods is null ? 4 : policy.Methods.All(ReadMethods.Contains) ? 1 : 2;
        var paths = policy.PathPrefix.Length == 0 ? 2 : 1;
        var conditions = policy.Conditions;
        var who = (conditions.Caller is null ? 2 : 1) * (conditions.Identity is null ? 2 : 1);
        return hosts * methods * paths * who * Math.Max(1, listeners);
    }
}
