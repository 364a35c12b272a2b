using System.Net;

namespace SecretlessProxy.Runtime;

/// <summary>
/// Set on a connection whose TLS the proxy intercepts: every request decrypted from it goes to this
/// host and port over TLS, whatever its Host header says (a mismatch is refused).
/// </summary>
internal sealed class TunnelFeature
{
    /// <param name="upstreamAddress">
    /// Transparent mode: the address the app was connecting to. Requests go there, not to a DNS
    /// lookup of <paramref name="host"/> that the app could steer; the upstream's certificate is still
    /// verified against <paramref name="host"/>.
    /// </param>
    public TunnelFeature(string host, int port, IPAddress? upstreamAddress = null)
    {
        Host = host;
        Port = port;
        UpstreamAddress = upstreamAddress;
        DestinationPrefix = "https://" + Authority(upstreamAddress?.ToString() ?? host) + ":" + port;
    }

    public string Host { get; }

    public int Port { get; }

    /// <summary>Null in forward mode (the CONNECT host is resolved); the original destination in transparent mode.</summary>
    public IPAddress? UpstreamAddress { get; }

    /// <summary>Where YARP sends the tunnel's requests, computed once per tunnel.</summary>
    public string DestinationPrefix { get; }

    internal static string Authority(string host) => host.Contains(':') ? "[" + host + "]" : host;
}
