namespace SecretlessProxy.Governance;

/// <summary>
/// One way a credential can leave the proxy: a policy that injects it, the destinations it
/// matches, the listeners it can be used through, and the conditions on who and when.
/// </summary>
/// <param name="Kind"><c>http</c> (a header, query, signature or client certificate on HTTP requests) or <c>database</c> (a database listener's login).</param>
/// <param name="Ports">Null: any port.</param>
/// <param name="Methods">Null: every method (for <c>database</c>: not applicable).</param>
/// <param name="PathPrefix">Empty: every path (for <c>database</c>: every database).</param>
/// <param name="Listeners">Listeners through which the policy can inject it; empty when none can now.</param>
/// <param name="Caller">Null: any calling process.</param>
/// <param name="Identity">Null: any workload identity, or none.</param>
/// <param name="When">Null: at any time.</param>
/// <param name="Score">This path's share of the entry's reach score.</param>
internal sealed record InventoryReach(
    string Policy,
    string Kind,
    string Injection,
    IReadOnlyList<string> Hosts,
    IReadOnlyList<int>? Ports,
    IReadOnlyList<string>? Methods,
    string PathPrefix,
    IReadOnlyList<string> Listeners,
    InventoryCaller? Caller,
    InventoryIdentity? Identity,
    string? When,
    int Score);
