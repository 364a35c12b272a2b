using System.Net;
using SecretlessProxy.Core;
using SecretlessProxy.Policy;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Runtime;

/// <summary>
/// A validated listener: what every kind has (name, address, limits, unmatched behaviour) and the
/// settings its kind compiled. Which kind serves it is <see cref="Mode"/>, as the kind spells it.
/// </summary>
internal sealed class ListenerDefinition
{
    public ListenerDefinition(string name, string mode, EndPoint bindEndPoint, UnmatchedBehavior unmatched, HttpDestination? http, Uri? upstream = null, QueryRedactor? queryRecording = null, ListenerSettings? settings = null, ListenerLimits? limits = null, IReadOnlyList<InjectionTarget>? injects = null)
    {
        Injects = injects ?? [];
        Limits = limits ?? ListenerLimits.Default;
        Settings = settings;
        QueryRecording = queryRecording;
        Name = name;
        Mode = mode;
        BindEndPoint = bindEndPoint;
        Http = http;
        Upstream = upstream;
        Unmatched = unmatched;
        // YARP appends the request path to this prefix; a trailing slash would double it.
        UpstreamPrefix = upstream?.GetLeftPart(UriPartial.Path).TrimEnd('/') ?? string.Empty;
    }

    public string Name { get; }

    /// <summary>The listener kind's <c>Mode</c> (Route, Forward, Postgres, Transparent), spelled as the kind spells it.</summary>
    public string Mode { get; }

    /// <summary>An <see cref="IPEndPoint"/>, or a <see cref="System.Net.Sockets.UnixDomainSocketEndPoint"/> for <c>unix:</c> URLs.</summary>
    public EndPoint BindEndPoint { get; }

    /// <summary>Where the shared HTTP handler finds each request's destination; null when the kind never hands a connection to HTTP.</summary>
    public HttpDestination? Http { get; }

    /// <summary>With <see cref="HttpDestination.Upstream"/>: the origin every request goes to; null otherwise.</summary>
    public Uri? Upstream { get; }

    public string UpstreamPrefix { get; }

    public UnmatchedBehavior Unmatched { get; }

    /// <summary>Null unless the listener opted in to recording query strings on spans.</summary>
    public QueryRedactor? QueryRecording { get; }

    /// <summary>The handshake deadline and the connection cap (<c>HandshakeTimeout</c>, <c>MaxConnections</c>).</summary>
    public ListenerLimits Limits { get; }

    /// <summary>
    /// What a policy used on this listener may inject, as its kind declares (<c>IListenerKind.Injects</c>):
    /// the pipeline refuses a policy whose injection targets anything else. Empty refuses every credential.
    /// </summary>
    public IReadOnlyList<InjectionTarget> Injects { get; }

    /// <summary>What the listener's kind compiled from the keys only it reads; null when the kind has none.</summary>
    public ListenerSettings? Settings { get; }
}
