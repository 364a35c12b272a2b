using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Policy;

/// <summary>
/// Observe, then enforce: a policy in <c>Mode: Observe</c> and <c>Unmatched: Observe</c> refuse
/// nothing and record what enforcing would do. What the upstream received is read from a raw
/// upstream: an observed allow carries the credential as enforcing would, an observed denial
/// carries nothing but what the app sent.
/// </summary>
public sealed class ObserveModeTests : IAsyncDisposable
{
    private readonly RawUpstream _upstream = RawUpstream.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "observe-" + Guid.NewGuid().ToString("N");

    public ObserveModeTests()
    {
        _config.RouteListener("api", "http://127.0.0.1:" + _upstream.Port)
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) });
    }

    private static int OwnUid => int.Parse(File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);

    private JsonObject Observed(string pathPrefix, JsonObject? caller = null)
    {
        var policy = TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], pathPrefix), "key", "X-Api-Key", "{token}");
        policy["Mode"] = "Observe";
        if (caller is not null)
        {
            policy["Caller"] = caller;
        }

        return policy;
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(_key);
        return harness;
    }

    private static async Task<JsonElement> LastDecisionAsync(ProxyHarness proxy)
    {
        using var admin = new HttpClient();
        return JsonDocument.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=1"))).RootElement.GetProperty("decisions")[0].Clone();
    }

    private async Task<RawUpstream.RawRequest> SendAsync(ProxyHarness proxy, string path, string? appKey = null)
    {
        var before = _upstream.Received.Count;
        var request = new HttpRequestMessage(HttpMethod.Get, proxy.Listener("api", path));
        if (appKey is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Api-Key", appKey);
        }

        var (response, body) = await proxy.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.OK, response.StatusCode + " " + body);
        await Poll.UntilAsync(() => _upstream.Received.Count > before, "the upstream to receive " + path);
        return _upstream.Received.Last();
    }

    [Fact]
    public async Task An_observed_allow_injects_as_enforcing_would_and_is_recorded_as_would_allow()
    {
        _config.Policy("orders", Observed("/v1/orders", new JsonObject { ["Uids"] = new JsonArray(OwnUid) }));
        await using var proxy = await StartAsync();

        var received = await SendAsync(proxy, "/v1/orders/7", appKey: "app-own-key");

        Assert.Equal(_key, received.Header("X-Api-Key"));
        var decision = await LastDecisionAsync(proxy);
        Assert.Equal("would-allow", decision.GetProperty("decision").GetString());
        Assert.Equal("forwarded", decision.GetProperty("outcome").GetString());
        Assert.Equal("orders", decision.GetProperty("policy").GetString());
        Assert.Equal("key", decision.GetProperty("credential").GetProperty("name").GetString());
        var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.proxy" && (string?)s.GetTagItem("url.path") == "/v1/orders/7");
        Assert.Equal("would-allow", span.GetTagItem("secretless.decision"));
    }

    [Fact]
    public async Task An_observed_denial_passes_the_request_through_untouched_with_nothing_injected()
    {
        _config.Policy("orders", Observed("/v1/orders", new JsonObject { ["Uids"] = new JsonArray(OwnUid + 4242) }));
        await using var proxy = await StartAsync();

        var received = await SendAsync(proxy, "/v1/orders/7", appKey: "app-own-key");

        // What the app sent, and no credential of the proxy's.
        Assert.Equal("app-own-key", received.Header("X-Api-Key"));
        Assert.DoesNotContain(_key, received.Head, StringComparison.Ordinal);
        var decision = await LastDecisionAsync(proxy);
        Assert.Equal("would-deny", decision.GetProperty("decision").GetString());
        Assert.Equal("passed-through", decision.GetProperty("outcome").GetString());
        Assert.Equal("orders", decision.GetProperty("policy").GetString());
        Assert.Contains("would not allow this request: its Caller condition does not allow the calling process's uid", decision.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, decision.GetProperty("credential").GetProperty("name").ValueKind);
    }

    [Fact]
    public async Task Unmatched_observe_passes_through_and_counts_would_deny()
    {
        _config.Policy("orders", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/orders"), "key", "X-Api-Key", "{token}"));
        _config.Set("Unmatched", "Observe");
        await using var proxy = await StartAsync();

        var enforced = await SendAsync(proxy, "/v1/orders/1");
        Assert.Equal(_key, enforced.Header("X-Api-Key"));
        Assert.Equal("allow", (await LastDecisionAsync(proxy)).GetProperty("decision").GetString());

        var unmatched = await SendAsync(proxy, "/v1/admin/users");
        Assert.Null(unmatched.Header("X-Api-Key"));
        var decision = await LastDecisionAsync(proxy);
        Assert.Equal("would-deny", decision.GetProperty("decision").GetString());
        Assert.StartsWith("no policy matches this request", decision.GetProperty("reason").GetString(), StringComparison.Ordinal);

        using var admin = new HttpClient();
        var metrics = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/metrics"));
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("secretless_proxy_requests_total{", StringComparison.Ordinal) && l.Contains("decision=\"would-deny\"", StringComparison.Ordinal) && l.EndsWith(" 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Switching_the_same_policy_to_enforce_refuses_what_was_observed_as_would_deny()
    {
        _config.Policy("orders", Observed("/v1/orders", new JsonObject { ["Uids"] = new JsonArray(OwnUid + 4242) }));
        await using var proxy = await StartAsync();
        await SendAsync(proxy, "/v1/orders/7");

        ((JsonObject)_config.Section["Policies"]!["orders"]!)["Mode"] = "Enforce";
        _config.Write();
        var reload = await proxy.AdminPostAsync("/reload");
        Assert.True(reload.IsSuccessStatusCode, await reload.Content.ReadAsStringAsync());
        var count = _upstream.Received.Count;

        var (response, _) = await proxy.GetAsync("api", "/v1/orders/7");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal(count, _upstream.Received.Count);
        Assert.Equal("deny", (await LastDecisionAsync(proxy)).GetProperty("decision").GetString());
    }

    [Fact]
    public async Task A_policy_mode_that_is_neither_enforce_nor_observe_is_a_config_error()
    {
        var policy = Observed("/v1/");
        policy["Mode"] = "DryRun";
        _config.Policy("orders", policy);
        var error = new StringWriter();

        var exit = await CliApp.InvokeAsync(["validate", "--config", _config.Write()], new StringWriter(), error);

        Assert.Equal(ExitCodes.InvalidConfig, exit);
        Assert.Contains("SecretlessProxy:Policies:orders:Mode", error.ToString(), StringComparison.Ordinal);
    }

    public async ValueTask DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _config.Dispose();
    }
}
