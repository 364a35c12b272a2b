using System.Net;
using System.Net.Sockets;
using Xunit;
using SecretlessProxy.Attestation;

namespace SecretlessProxy.Tests.Identity;

/// <summary>
/// The kernel's sock_diag answer for a socket is the row /proc/net/tcp prints for it: real
/// loopback connections (IPv4, IPv6 and an IPv4 client of a dual-stack listener), looked up both
/// ways, and compared with the client socket's own inode as /proc/self/fd names it.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SockDiagTests
{
    [Theory]
    [InlineData("127.0.0.1", false)]
    [InlineData("::1", false)]
    [InlineData("127.0.0.1", true)]
    public async Task FindsTheSameOwnerAndInodeAsProcNetTcp(string address, bool dualStackListener)
    {
        var ip = IPAddress.Parse(address);
        using var listener = dualStackListener ? new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true } : new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(dualStackListener ? IPAddress.IPv6Any : ip, 0));
        listener.Listen();
        using var client = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(ip, ((IPEndPoint)listener.LocalEndPoint!).Port));
        using var server = await listener.AcceptAsync();

        // What the proxy holds: the accepted socket's endpoints (IPv4-mapped on a dual-stack one).
        var remote = (IPEndPoint)server.RemoteEndPoint!;
        var local = (IPEndPoint)server.LocalEndPoint!;
        Assert.Equal(dualStackListener, remote.Address.IsIPv4MappedToIPv6);

        var fromKernel = SockDiag.Find(socketLocal: remote, socketRemote: local);
        var fromProc = ProcNetTcp.Find("/proc", socketLocal: remote, socketRemote: local);

        Assert.NotNull(fromKernel);
        Assert.Equal(fromProc, fromKernel);
        Assert.Equal("socket:[" + fromKernel!.Value.Inode + "]", ReadLink(client));
        Assert.Equal(fromKernel, TcpSocketLookup.Find("/proc", remote, local));

        // The server end is another socket, with its own inode.
        var serverEnd = SockDiag.Find(socketLocal: local, socketRemote: remote);
        Assert.NotNull(serverEnd);
        Assert.NotEqual(fromKernel.Value.Inode, serverEnd!.Value.Inode);
    }

    [Fact]
    public void NoSuchSocketIsNullAndTheFallbackAgrees()
    {
        // A port pair nothing uses: bind a port and close it, so nothing else can be on it either.
        int port;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }

        var nowhere = new IPEndPoint(IPAddress.Loopback, port);
        var alsoNowhere = new IPEndPoint(IPAddress.Loopback, 9);
        Assert.Null(SockDiag.Find(nowhere, alsoNowhere));
        Assert.Null(TcpSocketLookup.Find("/proc", nowhere, alsoNowhere));
        // Mixed families are no conversation at all.
        Assert.Null(SockDiag.Find(nowhere, new IPEndPoint(IPAddress.IPv6Loopback, 9)));
    }

    [Fact]
    public void RepliesThatAreNotASocketMessageAreNull()
    {
        var asked = Id(sport: 40000, dport: 8080);

        // NLMSG_ERROR (type 2) with ENOENT, as the kernel answers for a socket it does not have.
        var error = new byte[36];
        BitConverter.TryWriteBytes(error.AsSpan(0), 36u);
        BitConverter.TryWriteBytes(error.AsSpan(4), (ushort)2);
        BitConverter.TryWriteBytes(error.AsSpan(16), -2);
        Assert.Null(SockDiag.Parse(error, 2, asked));
        Assert.Null(SockDiag.Parse(error.AsSpan(0, 10), 2, asked));

        // A SOCK_DIAG_BY_FAMILY message cut short of its uid and inode.
        var shortMessage = new byte[60];
        BitConverter.TryWriteBytes(shortMessage.AsSpan(0), 60u);
        BitConverter.TryWriteBytes(shortMessage.AsSpan(4), (ushort)20);
        Assert.Null(SockDiag.Parse(shortMessage, 2, asked));
    }

    [Fact]
    public void OnlyAReplyAboutTheSocketAskedForCounts()
    {
        var asked = Id(sport: 40000, dport: 8080);

        Assert.Equal(new ProcNetTcp.SocketRow(1000, 4242), SockDiag.Parse(Reply(2, state: 1, Id(40000, 8080), uid: 1000, inode: 4242), 2, asked));
        // The kernel's lookup falls back to a listener when the connection is gone: not the caller.
        Assert.Null(SockDiag.Parse(Reply(2, state: 10, Id(40000, 0, dst: 0), uid: 1000, inode: 4242), 2, asked));
        Assert.Null(SockDiag.Parse(Reply(2, state: 1, Id(40001, 8080), uid: 1000, inode: 4242), 2, asked));
        Assert.Null(SockDiag.Parse(Reply(2, state: 1, Id(40000, 8080, src: 0x7F000002), uid: 1000, inode: 4242), 2, asked));
        // An IPv4 question answered by a dual-stack socket, with the IPv4-mapped addresses.
        var mapped = Id(40000, 8080);
        Array.Clear(mapped, 4, 32);
        mapped[14] = mapped[15] = 0xff;
        mapped[16] = 127; mapped[19] = 1;
        mapped[30] = mapped[31] = 0xff;
        mapped[32] = 127; mapped[35] = 1;
        Assert.Equal(new ProcNetTcp.SocketRow(1000, 4242), SockDiag.Parse(Reply(10, state: 1, mapped, uid: 1000, inode: 4242), 2, asked));
        // A uid the kernel could not map (overflow uid above int) is no answer.
        Assert.Null(SockDiag.Parse(Reply(2, state: 1, Id(40000, 8080), uid: uint.MaxValue, inode: 4242), 2, asked));
    }

    /// <summary>The first 36 bytes of an inet_diag_sockid: ports and 16-byte addresses, network order.</summary>
    private static byte[] Id(ushort sport, ushort dport, uint src = 0x7F000001, uint dst = 0x7F000001)
    {
        var id = new byte[36];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(id, sport);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(id.AsSpan(2), dport);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(id.AsSpan(4), src);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(id.AsSpan(20), dst);
        return id;
    }

    /// <summary>A SOCK_DIAG_BY_FAMILY reply: nlmsghdr, then inet_diag_msg with the given family, state, sockid, uid and inode.</summary>
    private static byte[] Reply(byte family, byte state, byte[] id, uint uid, uint inode)
    {
        var reply = new byte[16 + 72];
        BitConverter.TryWriteBytes(reply.AsSpan(0), (uint)reply.Length);
        BitConverter.TryWriteBytes(reply.AsSpan(4), (ushort)20);
        reply[16] = family;
        reply[17] = state;
        id.CopyTo(reply, 16 + 4);
        BitConverter.TryWriteBytes(reply.AsSpan(16 + 64), uid);
        BitConverter.TryWriteBytes(reply.AsSpan(16 + 68), inode);
        return reply;
    }

    private static string ReadLink(Socket socket) =>
        ProcFs.ReadLink("/proc/self/fd/" + socket.SafeHandle.DangerousGetHandle()) ?? "unreadable";
}
