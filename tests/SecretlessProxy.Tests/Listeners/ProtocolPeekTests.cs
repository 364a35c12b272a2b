using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;
using SecretlessProxy.Listeners;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>The Transparent listener's first-bytes decision, on real ClientHellos from .NET's TLS client.</summary>
public sealed class ProtocolPeekTests
{
    [Fact]
    public async Task ClientHello_gives_the_sni()
    {
        var hello = await CaptureClientHelloAsync("api.example.com");

        var result = ProtocolPeek.Classify(new ReadOnlySequence<byte>(hello), completed: false);

        Assert.Equal(PeekedProtocol.Tls, result.Protocol);
        Assert.Equal("api.example.com", result.ServerName);
    }

    [Fact]
    public async Task ClientHello_for_an_ip_literal_has_no_sni()
    {
        var hello = await CaptureClientHelloAsync("10.250.0.2");

        var result = ProtocolPeek.Classify(new ReadOnlySequence<byte>(hello), completed: false);

        Assert.Equal(PeekedProtocol.Tls, result.Protocol);
        Assert.Null(result.ServerName);
    }

    [Fact]
    public async Task Partial_ClientHello_needs_more_then_parses_across_segments()
    {
        var hello = await CaptureClientHelloAsync("api.example.com");

        Assert.Equal(PeekedProtocol.NeedMore, ProtocolPeek.Classify(new ReadOnlySequence<byte>(hello, 0, 3), completed: false).Protocol);
        Assert.Equal(PeekedProtocol.NeedMore, ProtocolPeek.Classify(new ReadOnlySequence<byte>(hello, 0, hello.Length - 1), completed: false).Protocol);
        // The client stopped sending halfway through: not a hello the proxy can decide on.
        Assert.Equal(PeekedProtocol.Other, ProtocolPeek.Classify(new ReadOnlySequence<byte>(hello, 0, hello.Length - 1), completed: true).Protocol);

        var split = SegmentedSequence.Create(hello, 7, 50);
        Assert.False(split.IsSingleSegment);
        Assert.Equal("api.example.com", ProtocolPeek.Classify(split, completed: false).ServerName);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: plain.test\r\n\r\n", nameof(PeekedProtocol.Http))]
    [InlineData("POST /v1 HTTP/1.1\r\n", nameof(PeekedProtocol.Http))]
    [InlineData("M-SEARCH * HTTP/1.1\r\n", nameof(PeekedProtocol.Http))]
    [InlineData("GE", nameof(PeekedProtocol.NeedMore))]
    [InlineData("SSH-2.0-OpenSSH_9.2\r\n", nameof(PeekedProtocol.Other))]
    [InlineData("get / HTTP/1.1\r\n", nameof(PeekedProtocol.Other))]
    [InlineData(" GET /", nameof(PeekedProtocol.Other))]
    [InlineData("\u0016\u0003\u0001\u0000\u0005hello", nameof(PeekedProtocol.Other))]
    [InlineData("\u0000\u0000\u0000\u0008\u0004\u00d2\u0016\u002f", nameof(PeekedProtocol.Other))]
    public void First_bytes_are_classified(string text, string expected)
    {
        var bytes = Encoding.Latin1.GetBytes(text);

        Assert.Equal(expected, ProtocolPeek.Classify(new ReadOnlySequence<byte>(bytes), completed: false).Protocol.ToString());
    }

    [Fact]
    public void An_overlong_method_is_not_http()
    {
        var bytes = Encoding.ASCII.GetBytes(new string('A', 64) + " / HTTP/1.1\r\n");

        Assert.Equal(PeekedProtocol.Other, ProtocolPeek.Classify(new ReadOnlySequence<byte>(bytes), completed: false).Protocol);
    }

    [Fact]
    public void Nothing_before_the_client_closed_is_other()
    {
        Assert.Equal(PeekedProtocol.NeedMore, ProtocolPeek.Classify(ReadOnlySequence<byte>.Empty, completed: false).Protocol);
        Assert.Equal(PeekedProtocol.Other, ProtocolPeek.Classify(ReadOnlySequence<byte>.Empty, completed: true).Protocol);
    }

    /// <summary>The first flight of a real TLS client: the bytes SslStream sends before it hears anything back.</summary>
    private static async Task<byte[]> CaptureClientHelloAsync(string targetHost)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        using var server = await listener.AcceptSocketAsync();
        using var tls = new SslStream(client.GetStream());
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var handshake = tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = targetHost }, stop.Token);

        var buffer = new byte[ProtocolPeek.MaxPeekBytes];
        var length = 0;
        while (true)
        {
            length += await server.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, stop.Token);
            if (length >= 5 && length >= 5 + ((buffer[3] << 8) | buffer[4]))
            {
                break;
            }
        }

        server.Close();
        await Assert.ThrowsAnyAsync<Exception>(() => handshake);
        return buffer[..length];
    }
}
