namespace SecretlessProxy.Configuration;

internal sealed class PolicyOptions
{
    public MatchOptions Match { get; set; } = new();

    /// <summary>Name of an entry under <c>Credentials</c>.</summary>
    public string? Credential { get; set; }

    public InjectOptions Inject { get; set; } = new();

    /// <summary>
    /// <c>Enforce</c> (default) or <c>Observe</c>: decisions are recorded as <c>would-allow</c> /
    /// <c>would-deny</c>; a request it would deny passes through with nothing injected.
    /// </summary>
    public string? Mode { get; set; }

    public CallerConditionOptions? Caller { get; set; }

    public IdentityConditionOptions? Identity { get; set; }

    public WhenOptions? When { get; set; }

    /// <summary>Each must equal the proxy's top-level label of the same name, or the policy does not apply.</summary>
    public Dictionary<string, string>? Labels { get; set; }

    /// <summary>
    /// Routing-override headers (X-HTTP-Method-Override, X-Forwarded-Host, ...) the app may send to an
    /// upstream that needs them. Every other one is removed from requests that carry a credential.
    /// </summary>
    public string[]? PassRoutingHeaders { get; set; }
}
