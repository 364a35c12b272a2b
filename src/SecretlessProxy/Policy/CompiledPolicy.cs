using SecretlessProxy.Core;

namespace SecretlessProxy.Policy;

/// <summary>A validated, immutable policy: what it matches, which credential it uses and how it is injected.</summary>
internal sealed class CompiledPolicy
{
    public CompiledPolicy(string name, IReadOnlyList<HostPattern> hosts, IReadOnlyList<int>? ports, IReadOnlyList<string>? methods, string pathPrefix, string credentialName, string credentialSource, InjectionRule injection, PolicyConditions? conditions = null, IReadOnlyList<string>? schemes = null, bool allowEncodedSlashes = false, IReadOnlyList<string>? passRoutingHeaders = null, bool observe = false)
    {
        Observe = observe;
        Schemes = schemes;
        AllowEncodedSlashes = allowEncodedSlashes;
        PassRoutingHeaders = passRoutingHeaders ?? [];
        Conditions = conditions ?? PolicyConditions.None;
        CredentialSource = credentialSource;
        Name = name;
        Hosts = hosts;
        Ports = ports;
        Methods = methods;
        PathPrefix = pathPrefix;
        CredentialName = credentialName;
        Injection = injection;
        AllowDecision = PolicyDecision.AllowFor(this);
        // One precomputed denial per condition kind, so deciding allocates nothing on the request path.
        var failures = Enum.GetValues<ConditionFailure>();
        _denials = new PolicyDecision[failures.Length];
        foreach (var failure in failures)
        {
            if (failure != ConditionFailure.None)
            {
                _denials[(int)failure] = PolicyDecision.DeniedBy(this, failure, Conditions.FailedLabel);
            }
        }
    }

    private readonly PolicyDecision[] _denials;

    public string Name { get; }

    public IReadOnlyList<HostPattern> Hosts { get; }

    /// <summary>Null means any port.</summary>
    public IReadOnlyList<int>? Ports { get; }

    /// <summary>Upper-case method names; null means any method.</summary>
    public IReadOnlyList<string>? Methods { get; }

    /// <summary>Empty means any path. Compared case-sensitively, as paths are (RFC 3986 section 6.2.2.1).</summary>
    public string PathPrefix { get; }

    public string CredentialName { get; }

    /// <summary>
    /// Lower-case schemes the policy matches; null means https where the app chooses the scheme and
    /// any scheme on a Route listener, whose upstream the operator chose.
    /// </summary>
    public IReadOnlyList<string>? Schemes { get; }

    /// <summary>Whether a path with <c>%2F</c> may be forwarded (byte-exact) under this policy.</summary>
    public bool AllowEncodedSlashes { get; }

    /// <summary>Routing-override headers the app may send through this policy (otherwise removed).</summary>
    public IReadOnlyList<string> PassRoutingHeaders { get; }

    /// <summary>The credential's source kind, fixed per snapshot, for spans and audit records.</summary>
    public string CredentialSource { get; }

    public InjectionRule Injection { get; }

    public PolicyDecision AllowDecision { get; }

    /// <summary>
    /// <c>Mode: Observe</c>: the policy's decisions are recorded as what enforcing would do; a request
    /// it would deny is passed through with nothing injected instead of refused.
    /// </summary>
    public bool Observe { get; }

    public PolicyConditions Conditions { get; }

    public PolicyDecision DenialFor(ConditionFailure failure) => _denials[(int)failure];

    /// <summary>Returns the specificity of the best host entry that matches, or null when the policy does not match.</summary>
    public PolicySpecificity? Match(in RequestDestination destination)
    {
        if (Methods is not null && !Contains(Methods, destination.Method))
        {
            return null;
        }

        if (Ports is not null && !Ports.Contains(destination.Port))
        {
            return null;
        }

        if ((Schemes is not null || destination.SchemeFromApp) && !Contains(Schemes ?? HttpsOnly, destination.Scheme))
        {
            // A policy written for https never sends its credential in plaintext to an address
            // the app picked by writing http:// instead.
            return null;
        }

        if (!destination.Path.StartsWith(PathPrefix, StringComparison.Ordinal))
        {
            return null;
        }

        // A database connection's path is "/" + its name, and names have no hierarchy: "/orders"
        // must not also admit "orders_admin", so for databases the prefix names one exactly.
        if (PathPrefix.Length > 0 && destination.IsDatabase && destination.Path.Length != PathPrefix.Length)
        {
            return null;
        }

        PolicySpecificity? best = null;
        foreach (var host in Hosts)
        {
            if (host.Matches(destination.Host))
            {
                var s = PolicySpecificity.For(host, PathPrefix, Methods is not null, Ports is not null, Conditions.Rank);
                if (best is null || s.CompareTo(best.Value) > 0)
                {
                    best = s;
                }
            }
        }

        return best;
    }

    private static readonly string[] HttpsOnly = ["https"];

    private static bool Contains(IReadOnlyList<string> methods, string method)
    {
        foreach (var m in methods)
        {
            // HTTP methods are case-sensitive (RFC 9110 section 9.1); config values are upper-cased at compile time.
            if (string.Equals(m, method, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
