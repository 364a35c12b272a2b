using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Admin;

public sealed class AdminEndpointTests : IDisposable
{
    private readonly TestConfig _config = new();
    private readonly string _key = "admin-test-key-" + Guid.NewGuid().ToString("N");

    public AdminEndpointTests()
    {
        _config.RouteListener("api", "http://127.0.0.1:9")
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "key"));
    }

    [Fact]
    public async Task Health_and_readiness_answer_on_the_admin_port_only()
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key);
        using var client = new HttpClient();

        var health = await client.GetAsync(new Uri(proxy.App.AdminUri, "/healthz"));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var ready = await client.GetAsync(new Uri(proxy.App.AdminUri, "/readyz"));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("ready", JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());
        Assert.NotEqual(proxy.App.AdminEndPoint.Port, proxy.App.GetListenerEndPoint("api").Port);

        // The listener does not serve admin paths: /healthz there is an ordinary proxied request, and denied.
        var throughListener = await client.GetAsync(proxy.Listener("api", "/healthz"));
        Assert.Equal(HttpStatusCode.Forbidden, throughListener.StatusCode);

        var credentials = await client.GetStringAsync(new Uri(proxy.App.AdminUri, "/credentials"));
        Assert.DoesNotContain(_key, credentials);
        Assert.Equal("empty", JsonDocument.Parse(credentials).RootElement.GetProperty("credentials")[0].GetProperty("state").GetString());
    }

    [Fact]
    public async Task Readiness_is_503_with_a_reason_once_stopping()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write());
        await using var _ = proxy;
        using var client = new HttpClient();
        proxy.App.State.MarkNotReady("stopping");

        var ready = await client.GetAsync(new Uri(proxy.App.AdminUri, "/readyz"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("stopping", body.GetProperty("reasons")[0].GetString());
    }

    public void Dispose() => _config.Dispose();
}
