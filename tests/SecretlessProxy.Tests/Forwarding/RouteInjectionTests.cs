using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Forwarding;

/// <summary>An unmodified app calls a route listener; what reaches the upstream, and what the app sees.</summary>
public sealed class RouteInjectionTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly FakeTokenEndpoint _tokens = new();
    private readonly TestConfig _config = new();
    private readonly string _clientSecret = "client-secret-" + Guid.NewGuid().ToString("N");
    private readonly string _apiKey = "file-api-key-" + Guid.NewGuid().ToString("N");

    public RouteInjectionTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("upstream-ok"));
        var secretFile = _config.SecretFile("client-secret", _clientSecret);
        var keyFile = _config.SecretFile("api-key", _apiKey);
        _config.RouteListener("payments", _upstream.LoopbackUrl())
            .Credential("payments-token", new JsonObject
            {
                ["Source"] = "OAuth2ClientCredentials",
                ["TokenUrl"] = _tokens.TokenUrl,
                ["AllowLoopbackSquatting"] = true,
                ["ClientId"] = "orders-service",
                ["ClientSecretFile"] = secretFile,
                ["Scopes"] = new JsonArray("payments.read", "payments.list"),
            })
            .Credential("static-key", new JsonObject { ["Source"] = "File", ["Path"] = keyFile, ["Username"] = "legacy-user" })
            .Policy("payments-read", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ["GET"]), "payments-token"))
            .Policy("legacy-key", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/legacy/"), "static-key", "X-Api-Key", "{token}"))
            .Policy("legacy-basic", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"], "/basic/"),
                ["Credential"] = "static-key",
                ["Inject"] = new JsonObject { ["Basic"] = true },
            })
            .Policy("legacy-query", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"], "/query/"),
                ["Credential"] = "static-key",
                ["Inject"] = new JsonObject { ["Query"] = "api_key" },
            });
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(_clientSecret, _apiKey);
        harness.NeverEmit(() => _tokens.IssuedTokens);
        return harness;
    }

    private WireMock.Logging.ILogEntry SingleUpstreamRequest() => Assert.Single(_upstream.LogEntries);

    private static string? Header(WireMock.Logging.ILogEntry entry, string name) =>
        entry.RequestMessage.Headers!.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value?.Single();

    [Fact]
    public async Task A_request_with_a_body_gets_the_credential_and_keeps_its_body_and_content_headers()
    {
        await using var proxy = await StartAsync();
        var request = new HttpRequestMessage(HttpMethod.Post, proxy.Listener("payments", "/basic/upload"))
        {
            Content = new StringContent("{\"order\":42}", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Authorization", "Basic app-own");

        var (response, _) = await proxy.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = SingleUpstreamRequest();
        Assert.Equal("Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("legacy-user:" + _apiKey)), Header(received, "Authorization"));
        Assert.Equal("{\"order\":42}", received.RequestMessage.Body);
        Assert.StartsWith("application/json", Header(received, "Content-Type"));
    }

    [Fact]
    public async Task Upstream_receives_the_fetched_token_and_not_the_apps_header()
    {
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("payments", "/v1/charges?limit=2", authorization: "Bearer app-supplied-value");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("upstream-ok", body);
        var received = SingleUpstreamRequest();
        Assert.Equal("Bearer " + Assert.Single(_tokens.IssuedTokens), Header(received, "Authorization"));
        Assert.Equal("/v1/charges", received.RequestMessage.Path);
        Assert.Equal("2", received.RequestMessage.Query!["limit"].Single());

        // The token request itself: client credentials grant, HTTP Basic client auth, scopes joined.
        var tokenRequest = Assert.Single(_tokens.Server.LogEntries);
        var expectedBasic = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("orders-service:" + _clientSecret));
        Assert.Equal(expectedBasic, Header(tokenRequest, "Authorization"));
        Assert.Contains("grant_type=client_credentials", tokenRequest.RequestMessage.Body);
        Assert.Contains("scope=payments.read+payments.list", tokenRequest.RequestMessage.Body);
        Assert.DoesNotContain("client_secret", tokenRequest.RequestMessage.Body);
    }

    [Fact]
    public async Task Second_request_uses_the_cached_token()
    {
        await using var proxy = await StartAsync();
        await proxy.GetAsync("payments", "/v1/a");
        await proxy.GetAsync("payments", "/v1/b");

        Assert.Equal(1, _tokens.TokenRequests);
        var token = Assert.Single(_tokens.IssuedTokens);
        Assert.All(_upstream.LogEntries, e => Assert.Equal("Bearer " + token, Header(e, "Authorization")));
    }

    [Fact]
    public async Task File_credential_replaces_the_apps_custom_header()
    {
        await using var proxy = await StartAsync();
        var request = new HttpRequestMessage(HttpMethod.Post, proxy.Listener("payments", "/legacy/upload"))
        {
            Content = new StringContent("{\"a\":1}", Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("X-Api-Key", "app-key");
        request.Headers.TryAddWithoutValidation("X-Other", "kept");

        var (response, _) = await proxy.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = SingleUpstreamRequest();
        Assert.Equal(_apiKey, Header(received, "X-Api-Key"));
        Assert.Equal("kept", Header(received, "X-Other"));
        Assert.Equal("{\"a\":1}", received.RequestMessage.Body);
        Assert.Equal("POST", received.RequestMessage.Method);
        Assert.Equal(0, _tokens.TokenRequests);
    }

    [Fact]
    public async Task Basic_injection_uses_the_credential_user_name_and_secret()
    {
        await using var proxy = await StartAsync();
        var (response, _) = await proxy.GetAsync("payments", "/basic/x", authorization: "Basic YXBwOmFwcA==");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("legacy-user:" + _apiKey));
        Assert.Equal(expected, Header(SingleUpstreamRequest(), "Authorization"));
    }

    [Fact]
    public async Task Query_injection_replaces_the_apps_parameter_and_keeps_the_others()
    {
        await using var proxy = await StartAsync();
        var (response, _) = await proxy.GetAsync("payments", "/query/items?api_key=app-value&page=3&api_key=again");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var query = SingleUpstreamRequest().RequestMessage.Query!;
        Assert.Equal(_apiKey, Assert.Single(query["api_key"]));
        Assert.Equal("3", Assert.Single(query["page"]));
    }

    [Fact]
    public async Task Unmatched_request_is_denied_with_problem_json_and_never_reaches_the_upstream()
    {
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Delete, proxy.Listener("payments", "/v1/charges/1")));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal(403, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Equal("Denied by policy", problem.RootElement.GetProperty("title").GetString());
        Assert.Contains("no policy matches", problem.RootElement.GetProperty("detail").GetString());
        Assert.Empty(_upstream.LogEntries);
        Assert.Equal(0, _tokens.TokenRequests);
    }

    [Fact]
    public async Task PassThrough_listener_forwards_unmatched_requests_untouched()
    {
        _config.RouteListener("open", _upstream.LoopbackUrl(), unmatched: "PassThrough");
        await using var proxy = await StartAsync();

        var (response, _) = await proxy.GetAsync("open", "/public/info", authorization: "Bearer app-own");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Bearer app-own", Header(SingleUpstreamRequest(), "Authorization"));
        Assert.Equal(0, _tokens.TokenRequests);
    }

    [Fact]
    public async Task Upstream_redirects_are_returned_to_the_app_not_followed()
    {
        _upstream.Given(Request.Create().WithPath("/v1/redirect")).AtPriority(0)
            .RespondWith(Response.Create().WithStatusCode(302).WithHeader("Location", "http://127.0.0.1:1/elsewhere"));
        await using var proxy = await StartAsync();

        var (response, _) = await proxy.GetAsync("payments", "/v1/redirect");

        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Single(_upstream.LogEntries);
    }

    [Fact]
    public async Task Unreachable_upstream_gives_502_problem()
    {
        var deadPort = WireMockFactory.FreePort();
        _config.RouteListener("dead", "http://127.0.0.1:" + deadPort);
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("dead", "/v1/x");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("Upstream request failed", body);
    }

    [Fact]
    public async Task Request_span_records_listener_policy_decision_credential_and_cache_outcome()
    {
        await using var proxy = await StartAsync();
        await proxy.GetAsync("payments", "/v1/one");
        await proxy.GetAsync("payments", "/v1/two");
        await proxy.GetAsync("payments", "/nope");

        var spans = proxy.Spans.Where(s => s.OperationName == "secretless.proxy" && (string?)s.GetTagItem("secretless.listener") == "payments" && ((string?)s.GetTagItem("url.path"))!.Length < 10).ToList();
        var first = Assert.Single(spans, s => (string?)s.GetTagItem("url.path") == "/v1/one");
        Assert.Equal("allow", first.GetTagItem("secretless.decision"));
        Assert.Equal("payments-read", first.GetTagItem("secretless.policy"));
        Assert.Equal("payments-token", first.GetTagItem("secretless.credential.name"));
        Assert.Equal("OAuth2ClientCredentials", first.GetTagItem("secretless.credential.source"));
        Assert.Equal("fetch", first.GetTagItem("secretless.credential.cache"));
        Assert.Equal(200, first.GetTagItem("http.response.status_code"));
        var second = Assert.Single(spans, s => (string?)s.GetTagItem("url.path") == "/v1/two");
        Assert.Equal("hit", second.GetTagItem("secretless.credential.cache"));
        var denied = Assert.Single(spans, s => (string?)s.GetTagItem("url.path") == "/nope");
        Assert.Equal("deny", denied.GetTagItem("secretless.decision"));
        Assert.Equal(403, denied.GetTagItem("http.response.status_code"));
        Assert.Contains(proxy.Spans, s => s.OperationName == "secretless.credential.fetch" && (string?)s.GetTagItem("secretless.credential.name") == "payments-token");
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _tokens.Dispose();
        _config.Dispose();
    }
}
