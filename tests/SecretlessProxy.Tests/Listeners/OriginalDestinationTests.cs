using System.Net;
using System.Net.Sockets;
using Xunit;
using SecretlessProxy.Listeners.Transparent;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>SO_ORIGINAL_DST's answer as Linux lays it out. Redirected sockets are covered by tests/transparent/pod-test.sh.</summary>
public sealed class OriginalDestinationTests
{
    [Fact]
    public void Sockaddr_in_gives_the_ipv4_endpoint()
    {
        // AF_INET=2 in host order, port 443 in network order, 10.250.0.2, 8 bytes of padding.
        byte[] sockaddr = [.. BitConverter.GetBytes((ushort)2), 0x01, 0xBB, 10, 250, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];

        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.250.0.2"), 443), OriginalDestination.Parse(sockaddr));
    }

    [Fact]
    public void Sockaddr_in6_gives_the_ipv6_endpoint()
    {
        var address = IPAddress.Parse("fd00::2");
        byte[] sockaddr = [.. BitConverter.GetBytes((ushort)10), 0x00, 0x50, 0, 0, 0, 0, .. address.GetAddressBytes(), 0, 0, 0, 0];

        Assert.Equal(new IPEndPoint(address, 80), OriginalDestination.Parse(sockaddr));
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 2, 0, 1 })]
    [InlineData(new byte[] { 1, 0, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0 })]
    public void Anything_else_is_no_destination(byte[] sockaddr)
    {
        Assert.Null(OriginalDestination.Parse(sockaddr));
    }

    [Fact]
    public async Task A_connection_remembers_a_bounded_number_of_host_answers_and_still_answers_past_the_bound()
    {
        var feature = new OriginalDestinationFeature(new IPEndPoint(IPAddress.Loopback, 80));

        // Address literals resolve to themselves without a DNS query: a new "name" per request, as
        // an app could send under a wildcard policy on one kept-alive connection.
        for (var i = 2; i < OriginalDestinationFeature.MaxRememberedNames + 20; i++)
        {
            Assert.False(await feature.ResolvesToAsync("127.0.0." + i, CancellationToken.None));
        }

        Assert.Equal(OriginalDestinationFeature.MaxRememberedNames, feature.RememberedNames);

        // Past the bound a name is still checked, each time, with the same answer.
        Assert.True(await feature.ResolvesToAsync("127.0.0.1", CancellationToken.None));
        Assert.True(await feature.ResolvesToAsync("127.0.0.1", CancellationToken.None));
        Assert.False(await feature.ResolvesToAsync("127.0.0.200", CancellationToken.None));
        Assert.Equal(OriginalDestinationFeature.MaxRememberedNames, feature.RememberedNames);
    }

    [Fact]
    public async Task A_connection_that_was_not_redirected_names_the_listener_itself_or_nothing()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        using var accepted = await listener.AcceptSocketAsync();

        // With connection tracking loaded the original destination is the listener's own address
        // (which the Transparent listener refuses as a loop); without it the kernel has no answer.
        var original = OriginalDestination.Read(accepted);

        Assert.True(original is null || original.Equals(accepted.LocalEndPoint), "got " + original);
    }
}
