using System.Net;
using System.Net.Sockets;
using Xunit;

namespace SecretlessProxy.Tests.Identity;

public sealed partial class LoopbackCallerResolverTests
{
    [Fact]
    public async Task Connections_attested_together_share_a_descriptor_pass_and_get_what_their_own_scans_say()
    {
        using var listener = Listen(IPAddress.Loopback);
        var connections = new List<(Socket Accepted, int Pid)>();
        for (var i = 0; i < 4; i++)
        {
            var client = CallerClient.Curl(Url(listener));
            _clients.Add(client);
            var accepted = await AcceptAsync(listener, client);
            _accepted.Add(accepted);
            connections.Add((accepted, client.Pid));
        }

        // Two from this process too: a socket of the proxy's own uid makes the pass read its descriptors.
        for (var i = 0; i < 2; i++)
        {
            var own = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            _accepted.Add(own);
            await own.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
            var accepted = await AcceptAsync(listener);
            _accepted.Add(accepted);
            connections.Add((accepted, Environment.ProcessId));
        }

        var before = _resolver.DescriptorPasses;
        var together = await Task.WhenAll(connections.Select(c => _resolver.AttestTcpAsync((IPEndPoint)c.Accepted.RemoteEndPoint!, (IPEndPoint)c.Accepted.LocalEndPoint!)));
        var passes = _resolver.DescriptorPasses - before;

        // The first pass may start before the others have asked; everyone after shares the next.
        Assert.InRange(passes, 1, 2);
        for (var i = 0; i < connections.Count; i++)
        {
            var (accepted, pid) = connections[i];
            var alone = _resolver.AttestTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);
            Assert.Equal(pid, together[i].Caller.Pid);
            Assert.Equal(alone.Caller.Pid, together[i].Caller.Pid);
            Assert.Equal(alone.Caller.Uid, together[i].Caller.Uid);
            Assert.Equal(alone.Caller.Executable, together[i].Caller.Executable);
            Assert.Equal(alone.Caller.ExecutableSha256, together[i].Caller.ExecutableSha256);
            Assert.Equal(alone.SocketInode, together[i].SocketInode);
            Assert.Equal(alone.Holders!.Select(h => (h.Pid, h.Fd)), together[i].Holders!.Select(h => (h.Pid, h.Fd)));
        }

        Assert.Equal(CallerClient.RealPath(Curl), together[0].Caller.Executable);
    }

    [Fact]
    public async Task A_connection_that_is_not_loopback_or_has_no_socket_row_is_unknown_without_a_pass()
    {
        var before = _resolver.DescriptorPasses;
        var remote = await _resolver.AttestTcpAsync(new IPEndPoint(IPAddress.Parse("10.1.2.3"), 40000), new IPEndPoint(IPAddress.Loopback, 8080));
        var gone = await _resolver.AttestTcpAsync(new IPEndPoint(IPAddress.Loopback, 9), new IPEndPoint(IPAddress.Loopback, 1));

        Assert.False(remote.Caller.IsKnown);
        Assert.False(gone.Caller.IsKnown);
        Assert.Equal(before, _resolver.DescriptorPasses);
    }
}
