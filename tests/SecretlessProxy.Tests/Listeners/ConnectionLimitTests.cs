using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;
using static SecretlessProxy.Tests.Listeners.HandshakeDeadlineTests;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// <c>MaxConnections</c> against a started proxy: the connection past the cap is refused (503 on
/// an HTTP listener, closed on a database listener), logged once per interval and counted, while
/// the connections already open keep working, and a closed one frees its place. The proxy runs on
/// a fake clock so the log's rate limit is exact (no deadline fires on it either).
/// </summary>
public sealed class ConnectionLimitTests : IDisposable
{
    private readonly TestConfig _config = new();
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly string _apiKey = "limit-key-" + Guid.NewGuid().ToString("N");

    public ConnectionLimitTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("upstream-ok"));
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _apiKey) })
            .Policy("api", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "key", "X-Key", "{token}"));
        _config.Section["Listeners"]!["api"]!["MaxConnections"] = 2;
    }

    [Fact]
    public async Task The_connection_past_the_cap_gets_503_and_the_open_ones_keep_working()
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        proxy.NeverEmit(_apiKey);
        using var first = await ConnectAsync(proxy, "api");
        using var second = await ConnectAsync(proxy, "api");
        Assert.StartsWith("HTTP/1.1 200 ", await RequestAsync(first), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 200 ", await RequestAsync(second), StringComparison.Ordinal);

        // Two are open; the third is answered without being read, and closed.
        using var third = await ConnectAsync(proxy, "api");
        var refused = Encoding.ASCII.GetString(await ReadUntilClosedAsync(third.GetStream()));

        Assert.StartsWith("HTTP/1.1 503 Service Unavailable\r\n", refused, StringComparison.Ordinal);
        Assert.Contains("Content-Type: application/problem+json", refused, StringComparison.Ordinal);
        Assert.Contains("urn:secretless-proxy:problem:too-many-connections", refused, StringComparison.Ordinal);
        // The listener keeps serving the connections it has.
        Assert.StartsWith("HTTP/1.1 200 ", await RequestAsync(first), StringComparison.Ordinal);
        var line = Assert.Single(proxy.Logs.Entries, e => e.EventId.Id == EventIds.ConnectionRefused);
        Assert.Contains(line.State, kv => kv.Key == "Listener" && (string?)kv.Value == "api");
        Assert.Contains(line.State, kv => kv.Key == "MaxConnections" && (int?)kv.Value == 2);
        Assert.Equal(1, await RefusedCountAsync(proxy, "api", "max-connections"));

        // Closing one frees its place for a new client (the close is noticed asynchronously).
        second.Dispose();
        await AssertEventuallyServedAsync(proxy);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task A_flood_of_refusals_is_counted_in_full_but_logged_once_per_interval()
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        using var first = await ConnectAsync(proxy, "api");
        using var second = await ConnectAsync(proxy, "api");
        Assert.StartsWith("HTTP/1.1 200 ", await RequestAsync(first), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 200 ", await RequestAsync(second), StringComparison.Ordinal);

        for (var i = 0; i < 5; i++)
        {
            using var extra = await ConnectAsync(proxy, "api");
            Assert.StartsWith("HTTP/1.1 503 ", Encoding.ASCII.GetString(await ReadUntilClosedAsync(extra.GetStream())), StringComparison.Ordinal);
        }

        Assert.Single(proxy.Logs.Entries, e => e.EventId.Id == EventIds.ConnectionRefused);

        _time.Advance(TimeSpan.FromSeconds(11));
        using (var late = await ConnectAsync(proxy, "api"))
        {
            Assert.StartsWith("HTTP/1.1 503 ", Encoding.ASCII.GetString(await ReadUntilClosedAsync(late.GetStream())), StringComparison.Ordinal);
        }

        var lines = proxy.Logs.Entries.Where(e => e.EventId.Id == EventIds.ConnectionRefused).ToList();
        Assert.Equal(2, lines.Count);
        // The second line says how many were refused without a line of their own.
        Assert.Contains(lines[1].State, kv => kv.Key == "NotLogged" && (long?)kv.Value == 4);
        Assert.Equal(6, await RefusedCountAsync(proxy, "api", "max-connections"));
    }

    [Fact]
    public async Task A_postgres_listener_at_its_cap_closes_the_next_connection_and_keeps_the_open_one()
    {
        _config.PostgresListener("db", "127.0.0.1:9", "db-login", new JsonObject { ["Mode"] = "Disable" })
            .Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("db-password", "db-secret"), ["Username"] = "orders" });
        _config.Section["Listeners"]!["db"]!["MaxConnections"] = 1;
        await using var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        using var open = await ConnectAsync(proxy, "db");
        // An SSLRequest answered 'N' shows the connection is being served.
        await SslRequestAsync(open);

        using var refused = await ConnectAsync(proxy, "db");

        // Closed without a byte: its client may be about to speak TLS or the startup message.
        Assert.Empty(await ReadUntilClosedAsync(refused.GetStream()));
        Assert.Equal(1, await RefusedCountAsync(proxy, "db", "max-connections"));
        Assert.Contains(proxy.Logs.Entries, e => e.EventId.Id == EventIds.ConnectionRefused && e.State.Any(kv => kv.Key == "Listener" && (string?)kv.Value == "db"));
        // The open one is still served: its startup message is read (and refused by policy, which
        // is a PostgreSQL ErrorResponse, not a closed socket).
        await open.GetStream().WriteAsync(StartupMessage("orders", "app"));
        var reply = new byte[1];
        await open.GetStream().ReadExactlyAsync(reply);
        Assert.Equal((byte)'E', reply[0]);
    }

    private static async Task SslRequestAsync(TcpClient client)
    {
        await client.GetStream().WriteAsync(new byte[] { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f });
        var answer = new byte[1];
        await client.GetStream().ReadExactlyAsync(answer);
        Assert.Equal((byte)'N', answer[0]);
    }

    private static byte[] StartupMessage(string database, string user)
    {
        var body = new MemoryStream();
        body.Write([0, 3, 0, 0]);
        foreach (var text in new[] { "user", user, "database", database, string.Empty })
        {
            body.Write(Encoding.ASCII.GetBytes(text));
            body.WriteByte(0);
        }

        var length = (int)body.Length + 4;
        return [(byte)(length >> 24), (byte)(length >> 16), (byte)(length >> 8), (byte)length, .. body.ToArray()];
    }

    /// <summary>One keep-alive request on a raw connection; returns the response head.</summary>
    private static async Task<string> RequestAsync(TcpClient client)
    {
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        var received = new StringBuilder();
        var buffer = new byte[4096];
        using var wait = new CancellationTokenSource(GenerousWait);
        while (!Complete(received.ToString()))
        {
            var read = await stream.ReadAsync(buffer, wait.Token);
            Assert.True(read > 0, "closed after: " + received);
            received.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return received.ToString();

        // The whole response, so that the next request on the connection reads only its own.
        static bool Complete(string text) =>
            text.Contains("upstream-ok", StringComparison.Ordinal) &&
            (!text.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase) || text.EndsWith("\r\n0\r\n\r\n", StringComparison.Ordinal));
    }

    private async Task AssertEventuallyServedAsync(ProxyHarness proxy)
    {
        using var wait = new CancellationTokenSource(GenerousWait);
        while (true)
        {
            using var client = await ConnectAsync(proxy, "api");
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
            var answer = Encoding.ASCII.GetString(await ReadUntilClosedAsync(stream));
            if (answer.StartsWith("HTTP/1.1 200 ", StringComparison.Ordinal))
            {
                Assert.Contains("upstream-ok", answer, StringComparison.Ordinal);
                return;
            }

            Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 503 ", StringComparison.Ordinal), answer);
            await Task.Delay(TimeSpan.FromMilliseconds(100), wait.Token);
        }
    }

    public void Dispose()
    {
        _upstream.Stop();
        _config.Dispose();
    }
}
