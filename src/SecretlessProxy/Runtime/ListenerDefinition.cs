using System.Net;
using SecretlessProxy.Policy;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Runtime;

/// <summary>A validated listener: where it binds and, in route mode, where its requests go.</summary>
public sealed class ListenerDefinition
{
    public ListenerDefinition(string name, ListenerMode mode, EndPoint bindEndPoint, Uri? upstream, UnmatchedBehavior unmatched, QueryRedactor? queryRecording = null, IReadOnlyList<int>? allowedConnectPorts = null, DatabaseListenerSettings? database = null, ListenerLimits? limits = null)
    {
        Limits = limits ?? ListenerLimits.Default;
        Database = database;
        QueryRecording = queryRecording;
        AllowedConnectPorts = allowedConnectPorts ?? [443];
        Name = name;
        Mode = mode;
        BindEndPoint = bindEndPoint;
        Upstream = upstream;
        Unmatched = unmatched;
        // YARP appends the request path to this prefix; a trailing slash would double it.
        UpstreamPrefix = upstream?.GetLeftPart(UriPartial.Path).TrimEnd('/') ?? string.Empty;
    }

    public string Name { get; }

    public ListenerMode Mode { get; }

    /// <summary>An <see cref="IPEndPoint"/>, or a <see cref="System.Net.Sockets.UnixDomainSocketEndPoint"/> for <c>unix:</c> URLs.</summary>
    public EndPoint BindEndPoint { get; }

    /// <summary>Route mode only; a forward listener's destination comes from each request.</summary>
    public Uri? Upstream { get; }

    public string UpstreamPrefix { get; }

    /// <summary>Forward mode: the ports a CONNECT may name.</summary>
    public IReadOnlyList<int> AllowedConnectPorts { get; }

    public UnmatchedBehavior Unmatched { get; }

    /// <summary>Null unless the listener opted in to recording query strings on spans.</summary>
    public QueryRedactor? QueryRecording { get; }

    /// <summary>The handshake deadline and the connection cap (<c>HandshakeTimeout</c>, <c>MaxConnections</c>).</summary>
    public ListenerLimits Limits { get; }

    /// <summary>Postgres mode only: the database server and the login credential.</summary>
    public DatabaseListenerSettings? Database { get; }
}
