using System.Net;

namespace SecretlessProxy.Core;

/// <summary>
/// The one definition of "on this host" for every check that trusts a local peer or endpoint
/// differently (caller attestation, admin endpoints, plain-http and squattable issuers).
/// </summary>
internal static class Loopback
{
    /// <summary>
    /// A peer address on this host's loopback: 127.0.0.0/8 and ::1, also when a dual-stack socket
    /// reports an IPv4 client in its IPv6-mapped form.
    /// </summary>
    public static bool IsLoopback(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return IPAddress.IsLoopback(address) || (address.IsIPv4MappedToIPv6 && IPAddress.IsLoopback(address.MapToIPv4()));
    }

    /// <summary>
    /// Whether the URL's host is this machine: <c>localhost</c> and <c>*.localhost</c> (RFC 6761
    /// section 6.3), 127.0.0.0/8, ::1, the unspecified addresses (a connection to 0.0.0.0 or ::
    /// reaches the local host on Linux) and their IPv4-mapped forms.
    /// </summary>
    public static bool IsLoopbackHost(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var host = url.IdnHost.TrimEnd('.');
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        return IPAddress.TryParse(host.Trim('[', ']'), out var address) && IsLocalAddress(address);
    }

    /// <summary>An address that a connection from this host delivers to this host's own listeners.</summary>
    public static bool IsLocalAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            var first = address.GetAddressBytes()[0];
            return first is 127 or 0;
        }

        return IPAddress.IPv6Loopback.Equals(address) || IPAddress.IPv6Any.Equals(address);
    }
}
