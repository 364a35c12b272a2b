using System.Net;

namespace SecretlessProxy.Runtime;

/// <summary>
/// Set by a Transparent listener on a plain-HTTP connection: every request on it goes to the address
/// the app was connecting to. The Host header names the policy host only where that address is one
/// the name resolves to (<see cref="ResolvesToAsync"/>); otherwise the destination is the address.
/// </summary>
internal sealed class OriginalDestinationFeature
{
    // How long one lookup may hold a request: the name is the app's, its resolver may be slow.
    private static readonly TimeSpan LookupTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The most answers one connection remembers. An app usually names one or two hosts per
    /// connection, but under a wildcard policy it could name a new one in every request of a
    /// kept-alive connection; past this many each new name is looked up again, not remembered.
    /// </summary>
    internal const int MaxRememberedNames = 32;

    // One connection's answers, by host name.
    private readonly Dictionary<string, bool> _verified = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _gate = new();

    public OriginalDestinationFeature(IPEndPoint endPoint)
    {
        EndPoint = endPoint;
        DestinationPrefix = "http://" + TunnelFeature.Authority(endPoint.Address.ToString()) + ":" + endPoint.Port;
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Where YARP sends the connection's requests, computed once per connection.</summary>
    public string DestinationPrefix { get; }

    /// <summary>How many answers this connection remembers now (at most <see cref="MaxRememberedNames"/>).</summary>
    internal int RememberedNames
    {
        get
        {
            lock (_gate)
            {
                return _verified.Count;
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="hostName"/> resolves (in the proxy's view of DNS and /etc/hosts) to the
    /// original address. A failed or slow lookup is a no: the request is then decided by the address.
    /// </summary>
    public async ValueTask<bool> ResolvesToAsync(string hostName, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_verified.TryGetValue(hostName, out var known))
            {
                return known;
            }
        }

        var resolves = false;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(LookupTimeout);
        try
        {
            var target = EndPoint.Address.IsIPv4MappedToIPv6 ? EndPoint.Address.MapToIPv4() : EndPoint.Address;
            foreach (var address in await Dns.GetHostAddressesAsync(hostName, timeout.Token).ConfigureAwait(false))
            {
                if ((address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address).Equals(target))
                {
                    resolves = true;
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or OperationCanceledException or ArgumentException)
        {
            resolves = false;
        }

        lock (_gate)
        {
            if (_verified.Count < MaxRememberedNames)
            {
                _verified[hostName] = resolves;
            }
        }

        return resolves;
    }
}
