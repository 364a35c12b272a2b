using System.Net;

namespace SecretlessProxy.Listeners;

/// <summary>
/// Set by a Transparent listener on a plain-HTTP connection: every request on it goes to the address
/// the app was connecting to, whatever host its Host header names (the Host names the policy host,
/// and is sent on unchanged).
/// </summary>
public sealed class OriginalDestinationFeature
{
    public OriginalDestinationFeature(IPEndPoint endPoint)
    {
        EndPoint = endPoint;
        DestinationPrefix = "http://" + TunnelFeature.Authority(endPoint.Address.ToString()) + ":" + endPoint.Port;
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Where YARP sends the connection's requests, computed once per connection.</summary>
    public string DestinationPrefix { get; }
}
