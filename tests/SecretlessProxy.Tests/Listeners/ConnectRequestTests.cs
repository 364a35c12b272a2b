using System.Buffers;
using System.Text;
using SecretlessProxy.Listeners.Forward;
using Xunit;

namespace SecretlessProxy.Tests.Listeners;

public sealed class ConnectRequestTests
{
    private static ConnectRequest? Parse(string head) => ConnectRequest.Parse(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(head)));

    [Theory]
    [InlineData("CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n", "api.example.com", 443)]
    [InlineData("CONNECT API.Example.COM:8443 HTTP/1.0\r\n\r\n", "api.example.com", 8443)]
    [InlineData("CONNECT [::1]:443 HTTP/1.1\r\n\r\n", "::1", 443)]
    [InlineData("CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n", "10.0.0.1", 443)]
    public void Authority_form_targets_are_parsed(string head, string host, int port)
    {
        Assert.Equal(new ConnectRequest(host, port), Parse(head));
    }

    [Theory]
    [InlineData("CONNECT api.example.com HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT api.example.com:0 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT api.example.com:70000 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT api.example.com:-1 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT http://api.example.com:443/ HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT user@api.example.com:443 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT [::1:443 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT :443 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT api.example.com:443 SPDY/3\r\n\r\n")]
    [InlineData("CONNECT  api.example.com:443 HTTP/1.1\r\n\r\n")]
    public void Malformed_targets_are_rejected(string head)
    {
        Assert.Null(Parse(head));
    }

    [Theory]
    [InlineData("CONNECT api.example.com.:443 HTTP/1.1\r\n\r\n", "api.example.com", 443)]
    [InlineData("CONNECT [0:0:0:0:0:0:0:1]:443 HTTP/1.1\r\n\r\n", "::1", 443)]
    public void Hosts_come_out_in_canonical_form(string head, string host, int port)
    {
        Assert.Equal(new ConnectRequest(host, port), ConnectRequest.Parse(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(head)), out var invalidHost));
        Assert.False(invalidHost);
    }

    [Theory]
    [InlineData("localhost;.example.test:443")]
    [InlineData("CN=x,O=y:443")]
    [InlineData("a\0b.example.test:443")]
    [InlineData("under_score.example.test:443")]
    [InlineData("::1:443")]
    [InlineData("[api.example.com]:443")]
    [InlineData("127.1:443")]
    [InlineData("user@api.example.com:443")]
    public void A_well_formed_request_line_whose_host_is_not_a_host_says_so(string authority)
    {
        var head = "CONNECT " + authority + " HTTP/1.1\r\n\r\n";
        Assert.Null(ConnectRequest.Parse(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(head)), out var invalidHost));
        Assert.True(invalidHost);
    }

    [Fact]
    public void Only_requests_that_start_like_connect_are_held_back_from_kestrel()
    {
        Assert.True(ConnectRequest.MayBeConnect(new ReadOnlySequence<byte>("CONN"u8.ToArray())));
        Assert.True(ConnectRequest.MayBeConnect(new ReadOnlySequence<byte>("CONNECT x:1"u8.ToArray())));
        Assert.False(ConnectRequest.MayBeConnect(new ReadOnlySequence<byte>("GET http://x/ HTTP/1.1"u8.ToArray())));
        Assert.False(ConnectRequest.MayBeConnect(new ReadOnlySequence<byte>("CONNEC "u8.ToArray())));
    }
}
