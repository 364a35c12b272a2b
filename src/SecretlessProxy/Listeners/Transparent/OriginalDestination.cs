using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace SecretlessProxy.Listeners.Transparent;

/// <summary>
/// Where a connection that iptables REDIRECTed to a Transparent listener was really going: the
/// destination before NAT, which the kernel's connection tracking keeps and hands out through
/// <c>SO_ORIGINAL_DST</c> (IPv4) and <c>IP6T_SO_ORIGINAL_DST</c> (IPv6), both option 80.
/// </summary>
internal static class OriginalDestination
{
    private const int SolIp = 0;
    private const int SolIpv6 = 41;
    private const int SoOriginalDst = 80;
    private const int AfInet = 2;
    private const int AfInet6 = 10;

    /// <summary>
    /// The original destination of an accepted socket, or null when the kernel has none (no
    /// connection-tracking entry: the nat table is not loaded, or the platform is not Linux).
    /// </summary>
    public static IPEndPoint? Read(Socket socket)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        // An IPv4 conversation on a dual-stack socket is still tracked by the IPv4 nat table.
        var local = socket.LocalEndPoint as IPEndPoint;
        var ipv4 = socket.AddressFamily == AddressFamily.InterNetwork || local?.Address.IsIPv4MappedToIPv6 == true;
        Span<byte> buffer = stackalloc byte[28];
        try
        {
            var length = socket.GetRawSocketOption(ipv4 ? SolIp : SolIpv6, SoOriginalDst, buffer);
            return Parse(buffer[..length]);
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>A <c>sockaddr_in</c> or <c>sockaddr_in6</c> as Linux lays them out (family in host order, port in network order).</summary>
    internal static IPEndPoint? Parse(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 8)
        {
            return null;
        }

        var family = BitConverter.IsLittleEndian ? BinaryPrimitives.ReadUInt16LittleEndian(sockaddr) : BinaryPrimitives.ReadUInt16BigEndian(sockaddr);
        var port = BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);
        if (family == AfInet && sockaddr.Length >= 8)
        {
            return new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), port);
        }

        if (family == AfInet6 && sockaddr.Length >= 28)
        {
            // sin6_flowinfo (4 bytes) sits between the port and the address; sin6_scope_id follows it.
            var scope = BitConverter.IsLittleEndian ? BinaryPrimitives.ReadUInt32LittleEndian(sockaddr[24..]) : BinaryPrimitives.ReadUInt32BigEndian(sockaddr[24..]);
            return new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16), scope), port);
        }

        return null;
    }
}
