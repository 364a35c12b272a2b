using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Hosting;

/// <summary>
/// Live reload of the config file: a narrowed or removed policy denies the very next request, on
/// kept-alive connections and open tunnels; invalid versions are rejected and the last good one
/// keeps serving; changed credentials are dropped and re-fetched.
/// </summary>
public sealed class ConfigReloadTests : IAsyncLifetime
{
    private readonly ITestOutputHelper _output;
    private readonly TestConfig _config = new();
    private readonly string _apiKey = "reload-key-" + Guid.NewGuid().ToString("N");
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private string _configPath = null!;

    public ConfigReloadTests(ITestOutputHelper output)
    {
        _output = output;
    }

    public Task InitializeAsync()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _apiKey) })
            .Policy("reads", ReadPolicy("/v1/"));
        _configPath = _config.Write();
        return Task.CompletedTask;
    }

    private static JsonObject ReadPolicy(string pathPrefix) =>
        TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], pathPrefix), "key", "X-Api-Key", "{token}");

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_configPath);
        harness.NeverEmit(_apiKey);
        return harness;
    }

    /// <summary>Writes the config the way an editor or a deploy tool does: a new file renamed over the old.</summary>
    private void Rewrite()
    {
        var temp = _config.Write("proxy.json.tmp");
        File.Move(temp, _configPath, overwrite: true);
    }

    /// <summary>A client that uses exactly one connection, and counts the connections it opened.</summary>
    private static (HttpClient Client, Func<int> Connections) SingleConnectionClient()
    {
        var connections = 0;
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            MaxConnectionsPerServer = 1,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            ConnectCallback = async (context, cancellationToken) =>
            {
                Interlocked.Increment(ref connections);
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        };
        return (new HttpClient(handler), () => Volatile.Read(ref connections));
    }

    private static async Task<HttpStatusCode> PollUntilAsync(Func<Task<HttpStatusCode>> send, HttpStatusCode wanted, TimeSpan bound)
    {
        var deadline = Stopwatch.StartNew();
        HttpStatusCode last;
        do
        {
            last = await send();
            if (last == wanted)
            {
                return last;
            }

            await Task.Delay(5);
        }
        while (deadline.Elapsed < bound);

        return last;
    }

    [Fact]
    public async Task A_narrowed_policy_denies_the_next_request_on_a_kept_alive_connection()
    {
        await using var proxy = await StartAsync();
        var (client, connections) = SingleConnectionClient();
        using var _ = client;
        var url = proxy.Listener("api", "/v1/orders");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(url)).StatusCode);

        _config.Policy("reads", ReadPolicy("/v1/public/"));
        var changed = Stopwatch.StartNew();
        Rewrite();
        var status = await PollUntilAsync(async () => (await client.GetAsync(url)).StatusCode, HttpStatusCode.Forbidden, TimeSpan.FromSeconds(15));
        var elapsed = changed.Elapsed;

        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal(1, connections());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(proxy.Listener("api", "/v1/public/catalog"))).StatusCode);
        // The line is written just after the swap, so it may trail the first denied request a little.
        for (var i = 0; i < 200 && !proxy.Logs.Entries.Any(e => e.EventId.Id == 5); i++)
        {
            await Task.Delay(10);
        }

        Assert.Contains(proxy.Logs.Entries, e => e.EventId.Id == 5 && e.Message.Contains("reloaded"));
        _output.WriteLine("file change to first denied request: " + elapsed.TotalMilliseconds.ToString("F0", System.Globalization.CultureInfo.InvariantCulture) + " ms");
    }

    [Fact]
    public async Task After_post_reload_the_very_next_request_on_the_kept_alive_connection_is_denied()
    {
        await using var proxy = await StartAsync();
        var (client, connections) = SingleConnectionClient();
        using var _ = client;
        var url = proxy.Listener("api", "/v1/orders");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(url)).StatusCode);

        _config.Section["Policies"]!.AsObject().Remove("reads");
        _config.Policy("public-only", ReadPolicy("/v1/public/"));
        File.WriteAllText(_configPath, File.ReadAllText(_config.Write("next.json")));
        Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/reload")).StatusCode);

        var (denied, body) = (await client.GetAsync(url)) is var r ? (r, await r.Content.ReadAsStringAsync()) : default;
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("no policy matches", body);
        Assert.Equal(1, connections());
        Assert.Single(_upstream.LogEntries);
    }

    [Fact]
    public async Task A_blind_tunnel_is_closed_when_a_reload_makes_a_policy_cover_its_host()
    {
        var port = _upstream.Ports[0];
        _config.Section["Listeners"] = new JsonObject();
        _config.ForwardListener("egress", [port], unmatched: "PassThrough")
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Policy("reads", TestConfig.HeaderPolicy(TestConfig.Match(["api.example.com"]), "key", "X-Api-Key", "{token}"));
        Rewrite();
        await using var proxy = await StartAsync();
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(proxy.App.GetListenerEndPoint("egress"));
        var authority = "127.0.0.1:" + port;
        await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 200", await ReceiveAsync(socket));
        await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes("GET /blind HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 200", await ReceiveAsync(socket));

        _config.Policy("local", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"]), "key", "X-Api-Key", "{token}"));
        Rewrite();

        // The proxy closes the tunnel: the client reads the end of the stream (bounded wait).
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var read = await socket.ReceiveAsync(new byte[1024], bound.Token);
        Assert.Equal(0, read);
        Assert.Contains(proxy.Logs.Entries, e => e.EventId.Id == 35 && e.Message.Contains(authority));
    }

    private static async Task<string> ReceiveAsync(System.Net.Sockets.Socket socket)
    {
        var buffer = new byte[4096];
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var n = await socket.ReceiveAsync(buffer, bound.Token);
        return System.Text.Encoding.ASCII.GetString(buffer, 0, n);
    }

    [Fact]
    public void The_folders_a_symlinked_config_resolves_through_are_watched()
    {
        // proxy.json -> /elsewhere/configmap/..data/proxy.json, ..data -> ..v1: both link folders change on a swap.
        var app = Directory.CreateDirectory(Path.Combine(_config.Directory, "app")).FullName;
        var configMap = Directory.CreateDirectory(Path.Combine(_config.Directory, "elsewhere", "configmap")).FullName;
        Directory.CreateDirectory(Path.Combine(configMap, "..v1"));
        File.WriteAllText(Path.Combine(configMap, "..v1", "proxy.json"), "{}");
        Directory.CreateSymbolicLink(Path.Combine(configMap, "..data"), "..v1");
        File.CreateSymbolicLink(Path.Combine(app, "proxy.json"), Path.Combine(configMap, "..data", "proxy.json"));

        var watched = SecretlessProxy.Hosting.ConfigReloader.WatchedDirectories(Path.Combine(app, "proxy.json"));

        Assert.Contains(app, watched);
        Assert.Contains(configMap, watched);
    }

    [Fact]
    public async Task A_removed_policy_denies_the_next_request_inside_an_open_tunnel()
    {
        var pki = new TestPki(_config.Directory);
        await using var https = await HttpsUpstream.StartAsync(pki.IssueServer());
        _config.Section["Listeners"] = new JsonObject();
        _config.ForwardListener("egress", [https.Port])
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Set("Upstreams", new JsonObject { ["TrustedCaFile"] = pki.CaFile })
            .Policy("reads", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/v1/"), "key", "X-Api-Key", "{token}"));
        Rewrite();
        await using var proxy = await StartAsync();
        using var client = new HttpClient(new SocketsHttpHandler
        {
            Proxy = new WebProxy(proxy.App.GetListenerUri("egress")),
            MaxConnectionsPerServer = 1,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            // The local CA is the proxy's own; the test trusts it the way the wrapped app is told to.
            SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        });
        var url = new Uri("https://localhost:" + https.Port + "/v1/orders");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(url)).StatusCode);

        _config.Section["Policies"] = new JsonObject { ["other"] = TestConfig.HeaderPolicy(TestConfig.Match(["api.example.com"]), "key") };
        Rewrite();
        var status = await PollUntilAsync(async () => (await client.GetAsync(url)).StatusCode, HttpStatusCode.Forbidden, TimeSpan.FromSeconds(15));

        Assert.Equal(HttpStatusCode.Forbidden, status);
        var forwarded = https.Received.Count;
        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync(url)).StatusCode);
        Assert.Equal(forwarded, https.Received.Count);
        // One tunnel throughout: the denials came from inside it, not from a new CONNECT.
        Assert.Single(proxy.Logs.Entries, e => e.EventId.Id == 31);
    }

    [Fact]
    public async Task Reload_under_load_fails_no_request_that_both_versions_allow()
    {
        await using var proxy = await StartAsync();
        var failures = new List<string>();
        var ok = 0;
        using var stop = new CancellationTokenSource();
        var workers = Enumerable.Range(0, 8).Select(async _ =>
        {
            using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false });
            while (!stop.IsCancellationRequested)
            {
                var response = await client.GetAsync(proxy.Listener("api", "/v1/orders"));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref ok);
                }
                else
                {
                    var text = (int)response.StatusCode + " " + await response.Content.ReadAsStringAsync();
                    lock (failures)
                    {
                        failures.Add(text);
                    }
                }
            }
        }).ToArray();

        // Both versions allow GET /v1/orders; they differ in a second policy and in the header format.
        for (var i = 0; i < 6; i++)
        {
            await Task.Delay(250);
            if (i % 2 == 0)
            {
                _config.Policy("writes", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v2/", ["POST"]), "key", "X-Api-Key", "{token}"));
            }
            else
            {
                _config.Section["Policies"]!.AsObject().Remove("writes");
            }

            Rewrite();
        }

        await Task.Delay(300);
        await stop.CancelAsync();
        await Task.WhenAll(workers);

        Assert.Empty(failures);
        Assert.True(ok > 100, "only " + ok + " requests ran");
        Assert.True(proxy.Logs.Entries.Count(e => e.EventId.Id == 5) >= 3, "reloads applied: " + proxy.Logs.Entries.Count(e => e.EventId.Id == 5));
    }

    [Fact]
    public async Task An_invalid_version_is_rejected_with_the_reason_in_the_log_and_readyz_and_the_last_good_keeps_serving()
    {
        await using var proxy = await StartAsync();
        using var admin = new HttpClient();

        _config.Policy("broken", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v9/"), "no-such-credential"));
        Rewrite();
        JsonElement lastReload = default;
        for (var i = 0; i < 300; i++)
        {
            var ready = JsonDocument.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/readyz"))).RootElement;
            if (ready.TryGetProperty("lastReload", out lastReload))
            {
                Assert.Equal("ready", ready.GetProperty("status").GetString());
                break;
            }

            await Task.Delay(20);
        }

        Assert.Equal("rejected", lastReload.GetProperty("outcome").GetString());
        var reason = Assert.Single(lastReload.GetProperty("reasons").EnumerateArray()).GetString();
        Assert.Equal("SecretlessProxy:Policies:broken:Credential: names unknown credential 'no-such-credential'", reason);
        Assert.Contains(proxy.Logs.Entries, e => e.EventId.Id == 6 && e.Message.Contains("names unknown credential 'no-such-credential'"));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/orders")).Response.StatusCode);

        // Fixed: the next version applies.
        _config.Section["Policies"]!.AsObject().Remove("broken");
        _config.Policy("reads", ReadPolicy("/v1/public/"));
        Rewrite();
        var status = await PollUntilAsync(async () => (await proxy.GetAsync("api", "/v1/orders")).Response.StatusCode, HttpStatusCode.Forbidden, TimeSpan.FromSeconds(15));
        Assert.Equal(HttpStatusCode.Forbidden, status);
    }

    [Fact]
    public async Task Post_reload_applies_now_or_answers_422_with_every_reason()
    {
        await using var proxy = await StartAsync();

        // A listener change cannot be applied in place: rejected, and the reason says so.
        _config.Section["Listeners"]!["api"]!["Url"] = "http://127.0.0.1:1";
        _config.Policy("broken", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"]), "missing"));
        File.WriteAllText(_configPath, File.ReadAllText(_config.Write("next.json")));
        var rejected = await proxy.AdminPostAsync("/reload");
        var body = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal((HttpStatusCode)422, rejected.StatusCode);
        Assert.Equal("rejected", body.GetProperty("outcome").GetString());
        Assert.Contains(body.GetProperty("reasons").EnumerateArray(), r => r.GetString()!.Contains("names unknown credential 'missing'"));

        _config.Section["Policies"]!.AsObject().Remove("broken");
        File.WriteAllText(_configPath, File.ReadAllText(_config.Write("next.json")));
        rejected = await proxy.AdminPostAsync("/reload");
        body = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal((HttpStatusCode)422, rejected.StatusCode);
        Assert.Equal("SecretlessProxy:Listeners:api (Mode or Url) changed; this needs a restart (the running version keeps serving)", Assert.Single(body.GetProperty("reasons").EnumerateArray()).GetString());

        _config.Section["Listeners"]!["api"]!["Url"] = "http://127.0.0.1:0";
        _config.Policy("reads", ReadPolicy("/v2/"));
        File.WriteAllText(_configPath, File.ReadAllText(_config.Write("next.json")));
        var applied = await proxy.AdminPostAsync("/reload");

        Assert.Equal(HttpStatusCode.OK, applied.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await proxy.GetAsync("api", "/v1/orders")).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v2/orders")).Response.StatusCode);
    }

    [Fact]
    public async Task A_configmap_symlink_swap_is_picked_up()
    {
        // The layout kubelet writes for a ConfigMap volume: proxy.json -> ..data/proxy.json, ..data -> ..<timestamp>.
        var volume = Path.Combine(_config.Directory, "configmap");
        Directory.CreateDirectory(Path.Combine(volume, "..v1"));
        File.Copy(_configPath, Path.Combine(volume, "..v1", "proxy.json"));
        Directory.CreateSymbolicLink(Path.Combine(volume, "..data"), "..v1");
        File.CreateSymbolicLink(Path.Combine(volume, "proxy.json"), "..data/proxy.json");
        _configPath = Path.Combine(volume, "proxy.json");
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/orders")).Response.StatusCode);

        _config.Policy("reads", ReadPolicy("/v2/"));
        Directory.CreateDirectory(Path.Combine(volume, "..v2"));
        File.Copy(_config.Write("next.json"), Path.Combine(volume, "..v2", "proxy.json"));
        Directory.CreateSymbolicLink(Path.Combine(volume, "..data_tmp"), "..v2");
        Assert.Equal(0, Rename(Path.Combine(volume, "..data_tmp"), Path.Combine(volume, "..data")));
        Directory.Delete(Path.Combine(volume, "..v1"), recursive: true);

        var status = await PollUntilAsync(async () => (await proxy.GetAsync("api", "/v1/orders")).Response.StatusCode, HttpStatusCode.Forbidden, TimeSpan.FromSeconds(15));
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v2/orders")).Response.StatusCode);
    }

    [Fact]
    public async Task A_changed_credential_is_dropped_and_fetched_anew_and_an_unchanged_one_is_kept()
    {
        using var tokens = new FakeTokenEndpoint();
        tokens.Succeed();
        var secret = _config.SecretFile("client-secret", "client-secret-" + Guid.NewGuid().ToString("N"));
        _config.Credential("orders", TestConfig.OAuth2(tokens.TokenUrl, secret, "orders-client"))
            .Credential("billing", TestConfig.OAuth2(tokens.TokenUrl, secret, "billing-client"))
            .Policy("orders", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/orders/"), "orders"))
            .Policy("billing", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/billing/"), "billing"));
        Rewrite();
        await using var proxy = await StartAsync();
        proxy.NeverEmit(() => tokens.IssuedTokens);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/orders/1")).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/billing/1")).Response.StatusCode);
        Assert.Equal(2, tokens.TokenRequests);

        var orders = TestConfig.OAuth2(tokens.TokenUrl, secret, "orders-client");
        orders["Scopes"] = new JsonArray("orders.read");
        _config.Credential("orders", orders);
        File.WriteAllText(_configPath, File.ReadAllText(_config.Write("next.json")));
        Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/reload")).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/orders/2")).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/billing/2")).Response.StatusCode);
        Assert.Equal(3, tokens.TokenRequests);
        var refetch = tokens.Server.LogEntries.Last(e => e.RequestMessage.Path == FakeTokenEndpoint.Path).RequestMessage.Body!;
        Assert.Contains("scope=orders.read", refetch);
        // The upstream got the token minted under the new definition.
        var lastToken = tokens.IssuedTokens.Last();
        Assert.Contains(_upstream.LogEntries, e => e.RequestMessage.Path == "/orders/2" && e.RequestMessage.Headers!["Authorization"].Single() == "Bearer " + lastToken);
    }

    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename(string oldPath, string newPath);

    public Task DisposeAsync()
    {
        _upstream.Stop();
        _config.Dispose();
        return Task.CompletedTask;
    }
}
