using System.Diagnostics;
using SecretlessProxy.Attestation;
using SecretlessProxy.Core;

namespace SecretlessProxy.Runtime;

/// <summary>
/// What a listener knows of one access when it asks <see cref="AccessPipeline"/>: the configuration
/// version it read once at the start, where the access is really going (established by the
/// listener, never by the app), who is calling and what the listener can inject.
/// </summary>
internal sealed class AccessRequest
{
    public AccessRequest(ProxyGeneration generation, ListenerDefinition listener, RequestDestination destination, Activity? activity)
    {
        Generation = generation;
        Listener = listener;
        Destination = destination;
        Injects = listener.Injects;
        Activity = activity;
    }

    public ProxyGeneration Generation { get; }

    public ListenerDefinition Listener { get; }

    public RequestDestination Destination { get; }

    /// <summary>What this listener can act on (its kind's <c>Injects</c>): a policy whose injection targets anything else is refused.</summary>
    public IReadOnlyList<InjectionTarget> Injects { get; }

    /// <summary>The listener's span for this access (request or connection); the pipeline adds the decision's tags.</summary>
    public Activity? Activity { get; }

    /// <summary>The connection's calling process; read once per access, which re-checks it while a policy has a Caller condition.</summary>
    public CallerFeature? Caller { get; init; }

    /// <summary>
    /// One access per connection (a database login): attesting the caller costs a /proc scan per
    /// access, so it is attested only when a Caller condition or the audit sink reads it, off the I/O thread.
    /// </summary>
    public bool OneAccessPerConnection { get; init; }

    /// <summary>Database listeners: the credential this listener logs in with; only the policies for that login decide.</summary>
    public string? LoginCredential { get; init; }

    /// <summary>HTTP listeners: the app's request, for injectors that refuse some requests (a signed reference to another resource).</summary>
    public HttpRequest? HttpRequest { get; init; }

    /// <summary>Why the path reads differently to different upstreams, or null: refused wherever a policy covers the host.</summary>
    public string? PathAmbiguity { get; init; }

    /// <summary>Why an encoded slash in the path is risky, or null when it has none: refused unless the policy allows encoded slashes.</summary>
    public string? EncodedSlash { get; init; }

    /// <summary>Cancelled when the app goes away; cancellation of the pipeline's token without it is the listener's deadline.</summary>
    public CancellationToken ClientClosed { get; init; }
}
