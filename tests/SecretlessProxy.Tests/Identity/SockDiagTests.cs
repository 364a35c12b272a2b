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
        // NLMSG_ERROR (type 2) with ENOENT, as the kernel answers for a socket it does not have.
        var error = new byte[36];
        BitConverter.TryWriteBytes(error.AsSpan(0), 36u);
        BitConverter.TryWriteBytes(error.AsSpan(4), (ushort)2);
        BitConverter.TryWriteBytes(error.AsSpan(16), -2);
        Assert.Null(SockDiag.Parse(error));
        Assert.Null(SockDiag.Parse(error.AsSpan(0, 10)));

        // A SOCK_DIAG_BY_FAMILY message cut short of its uid and inode.
        var shortMessage = new byte[60];
        BitConverter.TryWriteBytes(shortMessage.AsSpan(0), 60u);
        BitConverter.TryWriteBytes(shortMessage.AsSpan(4), (ushort)20);
        Assert.Null(SockDiag.Parse(shortMessage));
    }

    private static string ReadLink(Socket socket) =>
        ProcFs.ReadLink("/proc/self/fd/" + socket.SafeHandle.DangerousGetHandle()) ?? "unreadable";
}
