using System.Net;
using SecretlessProxy.Policy;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners;

/// <summary>A validated listener: where it binds and, in route mode, where its requests go.</summary>
public sealed class ListenerDefinition
{
    public ListenerDefinition(string name, ListenerMode mode, IPEndPoint bindEndPoint, Uri upstream, UnmatchedBehavior unmatched, QueryRedactor? queryRecording = null)
    {
        QueryRecording = queryRecording;
        Name = name;
        Mode = mode;
        BindEndPoint = bindEndPoint;
        Upstream = upstream;
        Unmatched = unmatched;
        // YARP appends the request path to this prefix; a trailing slash would double it.
        UpstreamPrefix = upstream.GetLeftPart(UriPartial.Path).TrimEnd('/');
    }

    public string Name { get; }

    public ListenerMode Mode { get; }

    public IPEndPoint BindEndPoint { get; }

    public Uri Upstream { get; }

    public string UpstreamPrefix { get; }

    public UnmatchedBehavior Unmatched { get; }

    /// <summary>Null unless the listener opted in to recording query strings on spans.</summary>
    public QueryRedactor? QueryRecording { get; }
}
