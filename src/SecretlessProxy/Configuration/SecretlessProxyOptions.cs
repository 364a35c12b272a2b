using SecretlessProxy.Listeners;

namespace SecretlessProxy.Configuration;

/// <summary>
/// The <c>SecretlessProxy</c> configuration section as bound from JSON and environment variables.
/// Mutable only for the binder: it is validated and compiled into an immutable <see cref="Runtime.ProxySnapshot"/>
/// before anything reads it on the request path.
/// </summary>
internal sealed class SecretlessProxyOptions
{
    public const string SectionName = "SecretlessProxy";

    public AdminOptions Admin { get; set; } = new();

    // Named maps rather than arrays (like YARP's Routes and Clusters) so that an environment
    // variable such as SecretlessProxy__Policies__payments-read__Credential can override one entry.
    public Dictionary<string, ListenerOptions> Listeners { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public Dictionary<string, CredentialOptions> Credentials { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public Dictionary<string, PolicyOptions> Policies { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public LocalCaOptions? LocalCa { get; set; }

    public UpstreamsOptions Upstreams { get; set; } = new();

    public AuditOptions Audit { get; set; } = new();

    public IdentityOptions? Identity { get; set; }

    public ShutdownOptions Shutdown { get; set; } = new();

    public LimitsOptions Limits { get; set; } = new();

    /// <summary>Where this proxy runs (<c>env</c>, <c>cluster</c>): compared with policies' <c>Labels</c>.</summary>
    public Dictionary<string, string> Labels { get; set; } = new(StringComparer.Ordinal);

    /// <summary><c>Deny</c> (default) or <c>PassThrough</c>: what happens to a request no policy matches.</summary>
    public string? Unmatched { get; set; }

    /// <summary>When true, every credential must name its <c>Owner</c> (<c>validate</c> reports each one that does not).</summary>
    public bool? RequireOwners { get; set; }
}
