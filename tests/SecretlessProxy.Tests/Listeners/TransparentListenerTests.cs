using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// A Transparent listener reached without iptables. Redirected connections (interception by SNI,
/// plain HTTP by Host, blind relay, Deny, the uid loop guard) need network namespaces and run in
/// tests/transparent/pod-test.sh.
/// </summary>
public sealed class TransparentListenerTests : IDisposable
{
    private readonly TestConfig _config = new();

    public TransparentListenerTests()
    {
        _config.Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Set("Unmatched", "PassThrough")
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", "transparent-secret-value") })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"]), "key", "X-Key", "{token}"));
        _config.Section["Listeners"]!["outbound"] = new JsonObject { ["Mode"] = "Transparent", ["Url"] = "tcp://127.0.0.1:0" };
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")]
    [InlineData("\u0016\u0003\u0001")]
    [InlineData("")]
    public async Task A_connection_that_was_not_redirected_is_closed_without_an_answer(string first)
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit("transparent-secret-value");
        var endPoint = proxy.App.GetListenerEndPoint("outbound");

        using var client = new TcpClient();
        await client.ConnectAsync(endPoint);
        var stream = client.GetStream();
        if (first.Length > 0)
        {
            await stream.WriteAsync(Encoding.Latin1.GetBytes(first));
        }

        // Its original destination is the listener itself (or unknown without connection tracking):
        // relaying it would loop, so nothing is sent anywhere and nothing comes back.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var buffer = new byte[256];
        int read;
        try
        {
            read = await stream.ReadAsync(buffer, timeout.Token);
        }
        catch (IOException)
        {
            read = 0;
        }

        Assert.Equal(0, read);
        Assert.Contains(proxy.Logs.Entries, e => e.EventId.Id is EventIds.TransparentLoopRefused or EventIds.TransparentRefused);
        Assert.DoesNotContain(proxy.Logs.Entries, e => e.EventId.Id is EventIds.RequestAllowed or EventIds.TransparentBlind);
    }

    public void Dispose() => _config.Dispose();
}
