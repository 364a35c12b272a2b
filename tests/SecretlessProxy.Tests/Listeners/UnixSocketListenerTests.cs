using System.Text.Json;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// A route listener on a Unix socket: unmodified curl connects with --unix-socket, and the kernel's
/// peer credentials (SO_PEERCRED) name the calling process for the policy's Caller condition.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class UnixSocketListenerTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "unix-key-" + Guid.NewGuid().ToString("N");
    private readonly string _socket;

    public UnixSocketListenerTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("upstream-ok"));
        // World-writable folder so that a client running as another uid can reach the socket.
        _socket = Path.Combine(_config.Directory, "proxy.sock");
        File.SetUnixFileMode(_config.Directory, (UnixFileMode)0b111_111_111);
        _config.RouteListener("local", _upstream.LoopbackUrl())
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) })
            .Policy("nobody-only", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"]),
                ["Caller"] = new JsonObject { ["Uids"] = new JsonArray(65534) },
                ["Credential"] = "key",
                ["Inject"] = new JsonObject { ["Header"] = "X-Api-Key", ["Format"] = "{token}" },
            });
        _config.Section["Listeners"]!["local"]!["Url"] = "unix:" + _socket;
    }

    [RootFact("/usr/bin/curl")]
    public async Task Curl_over_the_unix_socket_is_attested_by_its_peer_credentials()
    {
        // A stale socket file from a previous run must not stop the listener from binding.
        using (var stale = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
        {
            stale.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(_socket));
        }

        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key);
        File.SetUnixFileMode(_socket, (UnixFileMode)0b110_110_110);

        var asNobody = await ExternalClient.RunAsync("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/curl", "-sS", "--unix-socket", _socket, "http://app/v1/orders"]);
        var asRoot = await ExternalClient.RunAsync("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", _socket, "http://app/v1/orders"]);

        Assert.True(asNobody.ExitCode == 0, asNobody.ToString());
        Assert.Equal("upstream-ok", asNobody.Output);
        var received = Assert.Single(_upstream.LogEntries);
        Assert.Equal(_key, received.RequestMessage.Headers!.First(h => string.Equals(h.Key, "X-Api-Key", StringComparison.OrdinalIgnoreCase)).Value.Single());
        Assert.Equal("403", asRoot.Output);

        using var admin = new HttpClient();
        var decisions = JsonDocument.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=2"))).RootElement.GetProperty("decisions");
        var denied = decisions[0];
        var allowed = decisions[1];
        Assert.Equal("deny", denied.GetProperty("decision").GetString());
        Assert.Equal(0, denied.GetProperty("caller").GetProperty("uid").GetInt32());
        Assert.Equal("allow", allowed.GetProperty("decision").GetString());
        Assert.Equal(65534, allowed.GetProperty("caller").GetProperty("uid").GetInt32());
        Assert.EndsWith("curl", allowed.GetProperty("caller").GetProperty("executable").GetString());
        Assert.True(allowed.GetProperty("caller").GetProperty("pid").GetInt32() > 0);

        // Each request's span names the socket it came in on (no port to tell proxies apart by).
        var spans = proxy.Spans.Where(s => s.DisplayName == "secretless.proxy" && (string?)s.GetTagItem("secretless.listener") == "local").ToList();
        Assert.Equal(2, spans.Count);
        Assert.All(spans, s => Assert.Equal(_socket, s.GetTagItem("network.local.address")));
    }

    public void Dispose()
    {
        _upstream.Stop();
        _config.Dispose();
    }
}
