using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// Half-open connections against a started proxy with a 1 s <c>HandshakeTimeout</c>: a client that
/// stalls before its first request (CONNECT head, ClientHello, first bytes in a tunnel, PostgreSQL
/// startup, request head) is closed eventually, and the listener serves other clients meanwhile.
/// No test measures how long anything took.
/// </summary>
public sealed class HandshakeDeadlineTests : IDisposable
{
    /// <summary>Far longer than the 1 s deadline: only a connection nobody closes runs into it.</summary>
    internal static readonly TimeSpan GenerousWait = TimeSpan.FromSeconds(30);

    private readonly TestConfig _config = new();
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly string _apiKey = "deadline-key-" + Guid.NewGuid().ToString("N");

    public HandshakeDeadlineTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("upstream-ok"));
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .ForwardListener("egress", [443, _upstream.Ports[0]], unmatched: "PassThrough")
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _apiKey) })
            .Policy("api", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1", "localhost"], "/v1/"), "key", "X-Key", "{token}"));
        foreach (var name in new[] { "api", "egress" })
        {
            _config.Section["Listeners"]![name]!["HandshakeTimeout"] = "00:00:01";
        }
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_apiKey);
        return proxy;
    }

    [Fact]
    public async Task A_partial_connect_head_is_answered_408_and_closed_while_others_are_served()
    {
        await using var proxy = await StartAsync();
        using var stalled = await ConnectAsync(proxy, "egress");
        await stalled.GetStream().WriteAsync(Encoding.ASCII.GetBytes("CONNECT localhost:443 HTTP/1.1\r\nHost: local"));

        // Meanwhile an ordinary client of the same listener is served (absolute-form, plain HTTP, no policy: passed through).
        await AssertForwardServedAsync(proxy);

        var answer = Encoding.ASCII.GetString(await ReadUntilClosedAsync(stalled.GetStream()));
        Assert.StartsWith("HTTP/1.1 408 Request Timeout\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("application/problem+json", answer, StringComparison.Ordinal);
        AssertTimedOut(proxy, "egress", "the CONNECT request head");
        await AssertRefusedCountAsync(proxy, "egress", "handshake-timeout", 1);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task A_connect_followed_by_no_client_hello_is_closed()
    {
        await using var proxy = await StartAsync();
        using var stalled = await ConnectAsync(proxy, "egress");
        await stalled.GetStream().WriteAsync(Encoding.ASCII.GetBytes("CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n"));

        await AssertForwardServedAsync(proxy);

        // The tunnel is accepted (a policy can match localhost), then closed: no TLS came.
        var answer = Encoding.ASCII.GetString(await ReadUntilClosedAsync(stalled.GetStream()));
        Assert.Equal("HTTP/1.1 200 Connection Established\r\n\r\n", answer);
        AssertTimedOut(proxy, "egress", "the TLS handshake for localhost");
        await AssertRefusedCountAsync(proxy, "egress", "handshake-timeout", 1);
    }

    [Fact]
    public async Task A_tunnel_whose_tls_completes_but_sends_no_request_is_closed()
    {
        // The first handshake for a host issues its leaf (an RSA key) inside the handshake budget,
        // which on a busy machine can take longer than this test's 1 s: a tunnel through a listener
        // with the default budget leaves the leaf cached (the cache is the proxy's, not a listener's).
        _config.ForwardListener("warm", [443]);
        await using var proxy = await StartAsync();
        using (var warmUp = await ConnectAsync(proxy, "warm"))
        {
            await using var warmTls = await OpenTunnelAsync(warmUp);
        }

        using var stalled = await ConnectAsync(proxy, "egress");
        await using var tls = await OpenTunnelAsync(stalled);

        await AssertForwardServedAsync(proxy);

        Assert.Empty(await ReadUntilClosedAsync(tls));
        AssertTimedOut(proxy, "egress", "the first request in the tunnel to localhost");
    }

    [Fact]
    public async Task A_silent_connection_to_a_forward_listener_is_closed_without_an_answer()
    {
        await using var proxy = await StartAsync();
        using var silent = await ConnectAsync(proxy, "egress");

        await AssertForwardServedAsync(proxy);

        Assert.Empty(await ReadUntilClosedAsync(silent.GetStream()));
        AssertTimedOut(proxy, "egress", "the first request");
    }

    [Fact]
    public async Task A_silent_connection_to_a_route_listener_is_closed_while_a_normal_request_succeeds()
    {
        await using var proxy = await StartAsync();
        using var silent = await ConnectAsync(proxy, "api");

        var (response, body) = await proxy.GetAsync("api", "/v1/orders");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("upstream-ok", body);
        Assert.Empty(await ReadUntilClosedAsync(silent.GetStream()));
        AssertTimedOut(proxy, "api", "the first request");
        await AssertRefusedCountAsync(proxy, "api", "handshake-timeout", 1);
    }

    [Fact]
    public async Task A_partial_request_head_on_a_route_listener_is_closed_while_a_normal_request_succeeds()
    {
        await using var proxy = await StartAsync();
        using var stalled = await ConnectAsync(proxy, "api");
        await stalled.GetStream().WriteAsync(Encoding.ASCII.GetBytes("GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: "));

        var (response, _) = await proxy.GetAsync("api", "/v1/orders");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // Kestrel's request-head timeout, set from the listener's HandshakeTimeout, closes it; the
        // half-sent request never reaches the upstream.
        var answer = Encoding.ASCII.GetString(await ReadUntilClosedAsync(stalled.GetStream()));
        Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 408 ", StringComparison.Ordinal), answer);
        Assert.Single(_upstream.LogEntries);
    }

    [Fact]
    public async Task A_silent_postgres_client_is_closed_and_the_listener_still_answers_others()
    {
        _config.PostgresListener("db", "127.0.0.1:9", "db-login", new JsonObject { ["Mode"] = "Disable" })
            .Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("db-password", "db-secret"), ["Username"] = "orders" });
        _config.Section["Listeners"]!["db"]!["HandshakeTimeout"] = "00:00:01";
        await using var proxy = await StartAsync();
        using var silent = await ConnectAsync(proxy, "db");
        using var partial = await ConnectAsync(proxy, "db");
        // The first four bytes of a startup message: its length, and then nothing.
        await partial.GetStream().WriteAsync(new byte[] { 0, 0, 0, 40 });

        // Another client is still answered: an SSLRequest gets its one-byte 'N'.
        using var other = await ConnectAsync(proxy, "db");
        await other.GetStream().WriteAsync(new byte[] { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f });
        var answer = new byte[1];
        await other.GetStream().ReadExactlyAsync(answer);
        Assert.Equal((byte)'N', answer[0]);

        Assert.Empty(await ReadUntilClosedAsync(silent.GetStream()));
        Assert.Empty(await ReadUntilClosedAsync(partial.GetStream()));
        AssertTimedOut(proxy, "db", "the PostgreSQL startup");
        await AssertRefusedCountAsync(proxy, "db", "handshake-timeout", 2, atLeast: true);
    }

    /// <summary>CONNECT localhost:443 and a TLS handshake inside, accepting the local CA's leaf.</summary>
    private static async Task<SslStream> OpenTunnelAsync(TcpClient client)
    {
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n"));
        var established = new byte["HTTP/1.1 200 Connection Established\r\n\r\n".Length];
        await stream.ReadExactlyAsync(established);
        var tls = new SslStream(stream, leaveInnerStreamOpen: true, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync("localhost");
        return tls;
    }

    internal static async Task<TcpClient> ConnectAsync(ProxyHarness proxy, string listener)
    {
        var client = new TcpClient();
        await client.ConnectAsync(proxy.App.GetListenerEndPoint(listener));
        return client;
    }

    /// <summary>Everything the proxy sent until it closed the connection; a reset counts as closed.</summary>
    internal static async Task<byte[]> ReadUntilClosedAsync(Stream stream)
    {
        using var wait = new CancellationTokenSource(GenerousWait);
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, wait.Token)) > 0)
            {
                received.Write(buffer, 0, read);
            }
        }
        catch (IOException)
        {
        }

        return received.ToArray();
    }

    internal static async Task<long> RefusedCountAsync(ProxyHarness proxy, string listener, string reason)
    {
        using var admin = new HttpClient();
        var text = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/metrics"));
        var line = text.Split('\n').SingleOrDefault(l => l.StartsWith("secretless_proxy_connections_refused_total{", StringComparison.Ordinal) && l.Contains("listener=\"" + listener + "\"", StringComparison.Ordinal) && l.Contains("reason=\"" + reason + "\"", StringComparison.Ordinal));
        Assert.True(line is not null, "no refusal metric for " + listener + "/" + reason + " in\n" + text);
        return long.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task AssertRefusedCountAsync(ProxyHarness proxy, string listener, string reason, long expected, bool atLeast = false)
    {
        var count = await RefusedCountAsync(proxy, listener, reason);
        Assert.True(atLeast ? count >= expected : count == expected, "expected " + (atLeast ? "at least " : string.Empty) + expected + " refusals, counted " + count);
    }

    private static void AssertTimedOut(ProxyHarness proxy, string listener, string stage) =>
        Assert.True(proxy.Logs.Entries.Any(e => e.EventId.Id == EventIds.HandshakeTimedOut &&
            e.State.Any(kv => kv.Key == "Listener" && (string?)kv.Value == listener) &&
            e.State.Any(kv => kv.Key == "Stage" && (string?)kv.Value == stage)),
            "no log line says " + stage + " timed out on " + listener + "; the proxy logged:\n" + string.Join("\n", proxy.Logs.Entries.Where(e => e.Category.StartsWith("SecretlessProxy", StringComparison.Ordinal) || e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).Select(e => e.Level + " " + e.Category + " " + e.Message + " " + e.Exception)));

    private async Task AssertForwardServedAsync(ProxyHarness proxy)
    {
        using var client = new HttpClient(new SocketsHttpHandler { Proxy = new WebProxy(proxy.App.GetListenerUri("egress")), UseProxy = true });
        var response = await client.GetAsync(_upstream.LoopbackUrl() + "/open/through-forward");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("upstream-ok", await response.Content.ReadAsStringAsync());
    }

    public void Dispose()
    {
        _upstream.Stop();
        _config.Dispose();
    }
}
