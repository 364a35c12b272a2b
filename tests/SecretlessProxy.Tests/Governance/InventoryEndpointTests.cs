using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Governance;

/// <summary>
/// <c>GET /inventory</c> on a running proxy: the reach of every credential from the policies, and
/// what real requests through a Route listener actually used (count, last use, destination, caller).
/// </summary>
public sealed class InventoryEndpointTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "inventory-key-" + Guid.NewGuid().ToString("N");
    private readonly string _legacy = "inventory-legacy-" + Guid.NewGuid().ToString("N");
    private readonly string _unused = "inventory-unused-" + Guid.NewGuid().ToString("N");

    public InventoryEndpointTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key), ["Owner"] = new JsonObject { ["Technical"] = "platform-team" } })
            .Credential("legacy", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("legacy", _legacy) })
            .Credential("unused", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("unused", _unused) })
            .Policy("v1", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ["GET"]), "key"))
            .Policy("legacy", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/legacy/"), "legacy", "X-Api-Key", "{token}"))
            .Policy("elsewhere", TestConfig.HeaderPolicy(TestConfig.Match(["api.example.com"]), "unused"));
    }

    [Fact]
    public async Task Inventory_adds_the_uses_since_start_per_destination_and_caller_to_the_reach()
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key, _legacy, _unused, _config.AdminToken);
        var before = DateTimeOffset.UtcNow;

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/orders/" + i)).Response.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/legacy/report")).Response.StatusCode);
        // Denied (POST is not in v1's Methods): no credential went anywhere, so no use.
        using var post = new HttpRequestMessage(HttpMethod.Post, proxy.Listener("api", "/v1/orders"));
        Assert.Equal(HttpStatusCode.Forbidden, (await proxy.SendAsync(post)).Response.StatusCode);
        var after = DateTimeOffset.UtcNow;

        using var admin = new HttpClient();
        var response = await admin.GetAsync(new Uri(proxy.App.AdminUri, "/inventory"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var root = JsonDocument.Parse(body).RootElement;
        var since = root.GetProperty("usesSince").GetDateTimeOffset();
        Assert.True(since <= before, "counting starts with the proxy");
        Assert.Equal(0, root.GetProperty("usesNotItemised").GetInt64());
        var entries = root.GetProperty("credentials").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!, e => e.Clone());

        var destination = "http://127.0.0.1:" + _upstream.Ports[0];
        var keyUse = Assert.Single(entries["key"].GetProperty("uses").EnumerateArray());
        Assert.Equal("v1", keyUse.GetProperty("policy").GetString());
        Assert.Equal("api", keyUse.GetProperty("listener").GetString());
        Assert.Equal(destination, keyUse.GetProperty("destination").GetString());
        // The test process is the app: the proxy attested it by its executable.
        Assert.Equal(Environment.ProcessPath, keyUse.GetProperty("caller").GetString());
        Assert.Equal(3, keyUse.GetProperty("count").GetInt64());
        var lastUse = keyUse.GetProperty("lastUse").GetDateTimeOffset();
        Assert.InRange(lastUse, before, after);

        var legacyUse = Assert.Single(entries["legacy"].GetProperty("uses").EnumerateArray());
        Assert.Equal(("legacy", destination, 1L), (legacyUse.GetProperty("policy").GetString(), legacyUse.GetProperty("destination").GetString(), legacyUse.GetProperty("count").GetInt64()));

        // Reach comes from the policies: the unused credential has its reach and no use.
        Assert.Empty(entries["unused"].GetProperty("uses").EnumerateArray());
        var unusedReach = Assert.Single(entries["unused"].GetProperty("reach").EnumerateArray());
        Assert.Equal("elsewhere", unusedReach.GetProperty("policy").GetString());
        // The Route listener only goes to its upstream, so no listener can inject it now.
        Assert.Empty(unusedReach.GetProperty("listeners").EnumerateArray());
        Assert.Equal(["api"], entries["key"].GetProperty("reach")[0].GetProperty("listeners").EnumerateArray().Select(l => l.GetString()!).ToArray());

        // A File value has no expiry, so there is no observed lifetime to show.
        Assert.False(entries["key"].TryGetProperty("observedLifetime", out _));
        foreach (var secret in new[] { _key, _legacy, _unused })
        {
            Assert.DoesNotContain(secret, body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Inventory_shows_the_lifetime_the_issuer_gave_the_cached_token()
    {
        using var tokens = new FakeTokenEndpoint();
        tokens.Succeed(expiresIn: 3600);
        var clientSecret = "inventory-client-secret-" + Guid.NewGuid().ToString("N");
        _config.Credential("token", TestConfig.OAuth2(tokens.TokenUrl, _config.SecretFile("client-secret", clientSecret)))
            .Policy("tokens", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/token/"), "token"));
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var proxy = await ProxyHarness.StartAsync(_config.Write(), time);
        proxy.NeverEmit(_key, _legacy, _unused, clientSecret);
        proxy.NeverEmit(() => tokens.IssuedTokens);

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/token/a")).Response.StatusCode);

        using var admin = new HttpClient();
        var body = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/inventory"));
        var entry = JsonDocument.Parse(body).RootElement.GetProperty("credentials").EnumerateArray().Single(e => e.GetProperty("name").GetString() == "token");
        Assert.Equal("01:00:00", entry.GetProperty("observedLifetime").GetString());
        Assert.Equal("expires_in as the token endpoint answers (DefaultLifetime 00:05:00 when it gives none)", entry.GetProperty("lifetime").GetString());
        Assert.Equal(time.GetUtcNow(), Assert.Single(entry.GetProperty("uses").EnumerateArray()).GetProperty("lastUse").GetDateTimeOffset());
    }

    [Fact]
    public async Task Inventory_is_served_neither_on_the_probe_endpoint_nor_on_a_proxy_listener()
    {
        // The probe endpoint may face the pod network: the inventory names destinations and callers.
        _config.Section["Admin"]!["ProbeUrl"] = "http://127.0.0.1:0";
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key, _legacy, _unused);
        using var client = new HttpClient();

        var probe = await client.GetAsync(new Uri(proxy.App.ProbeUri!, "/inventory"));
        // On the listener, /inventory is an ordinary request that no policy matches.
        var (listener, _) = await proxy.GetAsync("api", "/inventory");

        Assert.Equal(HttpStatusCode.NotFound, probe.StatusCode);
        Assert.Contains("serves /healthz, /readyz and /metrics only", await probe.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Forbidden, listener.StatusCode);
    }

    public void Dispose()
    {
        _upstream.Stop();
        _config.Dispose();
    }
}
