namespace SecretlessProxy.Listeners;

/// <summary>
/// Set on a connection whose CONNECT tunnel the proxy intercepts: every request decrypted from it
/// goes to this host and port over TLS, whatever its Host header says (a mismatch is refused).
/// </summary>
public sealed class TunnelFeature
{
    public TunnelFeature(string host, int port)
    {
        Host = host;
        Port = port;
        var authority = host.Contains(':') ? "[" + host + "]" : host;
        DestinationPrefix = "https://" + authority + ":" + port;
    }

    public string Host { get; }

    public int Port { get; }

    /// <summary>Where YARP sends the tunnel's requests, computed once per tunnel.</summary>
    public string DestinationPrefix { get; }
}
