using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// Just-in-time OAuth2 credentials through the real proxy: one fetch for many waiting requests,
/// refresh ahead of expiry, and failing closed when the token endpoint is down, slow or broken.
/// Expiry is driven by a fake clock; network timeouts are real, as they are in production.
/// </summary>
public sealed class CredentialLifecycleTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly FakeTokenEndpoint _tokens = new();
    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly string _clientSecret = "client-secret-" + Guid.NewGuid().ToString("N");

    public CredentialLifecycleTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Policy("api-read", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "api-token"));
        Credential();
    }

    private void Credential(Action<JsonObject>? change = null)
    {
        var definition = new JsonObject
        {
            ["Source"] = "OAuth2ClientCredentials",
            ["TokenUrl"] = _tokens.TokenUrl,
            ["AllowLoopbackSquatting"] = true,
            ["ClientId"] = "orders-service",
            ["ClientSecretFile"] = _config.SecretFile("client-secret", _clientSecret),
            // Retries without delay: the fake clock does not advance by itself.
            ["RetryDelay"] = "00:00:00",
            // Refresh exactly at RefreshAt, as these tests step the clock to it (spreading: RefreshSpreadingTests).
            ["RefreshJitter"] = 0,
            ["SpreadFirstRefresh"] = false,
        };
        change?.Invoke(definition);
        _config.Credential("api-token", definition);
    }

    private async Task<ProxyHarness> StartAsync(bool fakeTime = true)
    {
        var harness = await ProxyHarness.StartAsync(_config.Write(), fakeTime ? _time : null);
        harness.NeverEmit(_clientSecret);
        harness.NeverEmit(() => _tokens.IssuedTokens);
        return harness;
    }

    private string[] UpstreamAuthorizations() =>
        _upstream.LogEntries.Select(e => e.RequestMessage.Headers!.First(h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase)).Value.Single()).ToArray();

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, string body, HttpStatusCode expected)
    {
        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        await Task.CompletedTask;
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    [Fact]
    public async Task Five_hundred_concurrent_requests_on_a_cold_cache_cause_exactly_one_token_request()
    {
        _tokens.Succeed(expiresIn: 3600, delay: TimeSpan.FromMilliseconds(500));
        await using var proxy = await StartAsync(fakeTime: false);

        var requests = Enumerable.Range(0, 500).Select(i => proxy.GetAsync("api", "/v1/items/" + i));
        var responses = await Task.WhenAll(requests);

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.Response.StatusCode));
        Assert.Equal(1, _tokens.TokenRequests);
        var token = Assert.Single(_tokens.IssuedTokens);
        Assert.Equal(500, _upstream.LogEntries.Count());
        Assert.All(UpstreamAuthorizations(), a => Assert.Equal("Bearer " + token, a));
    }

    [Fact]
    public async Task Token_is_refreshed_ahead_of_expiry_without_a_failed_request()
    {
        _tokens.Succeed(expiresIn: 100);
        await using var proxy = await StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);
        var first = Assert.Single(_tokens.IssuedTokens);

        // Past 80% of the lifetime, still valid: requests are served from cache while one refresh runs.
        var firstExpiry = proxy.App.State.Cache.GetStatuses().Single().ExpiresAt;
        _time.Advance(TimeSpan.FromSeconds(85));
        var during = await Task.WhenAll(Enumerable.Range(0, 50).Select(i => proxy.GetAsync("api", "/v1/b" + i)));
        Assert.All(during, r => Assert.Equal(HttpStatusCode.OK, r.Response.StatusCode));
        // The endpoint issuing the token is not yet the cache holding it: wait for the new expiry.
        await WaitUntilAsync(() => _tokens.IssuedTokens.Count == 2 && proxy.App.State.Cache.GetStatuses().Single().ExpiresAt > firstExpiry);

        var (response, _) = await proxy.GetAsync("api", "/v1/c");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, _tokens.TokenRequests);
        var second = _tokens.IssuedTokens.Last();
        Assert.NotEqual(first, second);
        Assert.Equal("Bearer " + second, UpstreamAuthorizations().Last());
        Assert.Contains(proxy.Spans, s => (string?)s.GetTagItem("secretless.credential.cache") == "refresh-ahead");
    }

    [Fact]
    public async Task Token_endpoint_down_serves_the_valid_token_then_503_after_expiry_and_never_an_expired_token()
    {
        _tokens.Succeed(expiresIn: 60);
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

        _tokens.GoDown();

        // Refresh point passed, refresh fails in the background, the still-valid token keeps serving.
        _time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/b")).Response.StatusCode);
        await WaitUntilAsync(() => proxy.Logs.Entries.Any(e => e.EventId.Id == 21));
        var upstreamCallsBeforeExpiry = _upstream.LogEntries.Count();

        _time.Advance(TimeSpan.FromSeconds(11));
        var (response, body) = await proxy.GetAsync("api", "/v1/c");

        var problem = await ProblemAsync(response, body, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("Credential unavailable", problem.GetProperty("title").GetString());
        Assert.Contains("api-token", problem.GetProperty("detail").GetString());
        Assert.Equal(upstreamCallsBeforeExpiry, _upstream.LogEntries.Count());
    }

    [Fact]
    public async Task Slow_token_endpoint_past_the_timeout_gives_503()
    {
        Credential(c =>
        {
            c["Timeout"] = "00:00:00.500";
            c["RetryAttempts"] = 0;
        });
        _tokens.Succeed(expiresIn: 60, delay: TimeSpan.FromSeconds(5));
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/v1/a");

        var problem = await ProblemAsync(response, body, HttpStatusCode.ServiceUnavailable);
        Assert.Contains("did not answer within 0.5 s", problem.GetProperty("detail").GetString());
        Assert.Empty(_upstream.LogEntries);
    }

    [Theory]
    [InlineData(200, "<html>gateway error</html>", "text/html", "not JSON")]
    [InlineData(200, "{\"token_type\":\"Bearer\"}", "application/json", "no access_token")]
    [InlineData(200, "[1,2]", "application/json", "not an object")]
    [InlineData(200, "{\"access_token\":\"abc\",\"expires_in\":\"soon\"}", "application/json", "expires_in that is not a number")]
    [InlineData(200, "{\"access_token\":\"abc\",\"expires_in\":-5}", "application/json", "non-positive expires_in")]
    [InlineData(200, "{\"access_token\":\"ab\\r\\nX-Injected: 1\",\"expires_in\":60}", "application/json", "control characters")]
    [InlineData(503, "unavailable", "text/plain", "answered 503")]
    public async Task Garbage_from_the_token_endpoint_gives_503_with_a_clear_reason(int status, string body, string contentType, string reason)
    {
        _tokens.Respond(status, body, contentType);
        await using var proxy = await StartAsync();

        var (response, responseBody) = await proxy.GetAsync("api", "/v1/a");

        var problem = await ProblemAsync(response, responseBody, HttpStatusCode.ServiceUnavailable);
        Assert.Contains(reason, problem.GetProperty("detail").GetString());
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Token_endpoint_error_that_echoes_the_secret_is_reported_without_it()
    {
        _tokens.Respond(401, "{\"error\":\"invalid_client\",\"error_description\":\"client secret " + _clientSecret + " is wrong\"}");
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/v1/a");

        var problem = await ProblemAsync(response, body, HttpStatusCode.ServiceUnavailable);
        Assert.Contains("answered 401 (invalid_client)", problem.GetProperty("detail").GetString());
        Assert.DoesNotContain(_clientSecret, body);
        // A 401 is not transient: one request, no retries.
        Assert.Equal(1, _tokens.TokenRequests);
    }

    [Fact]
    public async Task Transient_failures_are_retried_within_one_fetch()
    {
        Credential(c => c["RetryAttempts"] = 2);
        _tokens.Respond(500, "{}");
        await using var proxy = await StartAsync();

        var (response, _) = await proxy.GetAsync("api", "/v1/a");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(3, _tokens.TokenRequests);
    }

    [Fact]
    public async Task After_a_failure_requests_fail_fast_during_backoff_then_recover()
    {
        Credential(c => c["RetryAttempts"] = 0);
        _tokens.Respond(500, "{}");
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

        // Within backoff: no new request to the identity provider.
        var (during, body) = await proxy.GetAsync("api", "/v1/b");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, during.StatusCode);
        Assert.Contains("retrying after backoff", body);
        Assert.Equal(1, _tokens.TokenRequests);

        _tokens.Succeed(expiresIn: 60);
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/c")).Response.StatusCode);
        Assert.Equal("Bearer " + Assert.Single(_tokens.IssuedTokens), Assert.Single(UpstreamAuthorizations()));
    }

    [Fact]
    public async Task Client_auth_in_body_sends_client_id_secret_and_extra_parameters()
    {
        Credential(c =>
        {
            c["ClientAuth"] = "Body";
            c["Audience"] = "https://payments.example.com";
            c["Resource"] = "urn:payments";
            c["Parameters"] = new JsonObject { ["tenant"] = "eu-1" };
        });
        await using var proxy = await StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

        var tokenRequest = Assert.Single(_tokens.Server.LogEntries).RequestMessage;
        Assert.DoesNotContain(tokenRequest.Headers!, h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase));
        var form = tokenRequest.Body!.Split('&').Select(p => p.Split('=')).ToDictionary(p => p[0], p => Uri.UnescapeDataString(p[1].Replace('+', ' ')));
        Assert.Equal("client_credentials", form["grant_type"]);
        Assert.Equal("orders-service", form["client_id"]);
        Assert.Equal(_clientSecret, form["client_secret"]);
        Assert.Equal("https://payments.example.com", form["audience"]);
        Assert.Equal("urn:payments", form["resource"]);
        Assert.Equal("eu-1", form["tenant"]);
    }

    [Fact]
    public async Task Credentials_endpoint_reports_state_and_errors_but_never_a_value()
    {
        _tokens.Succeed(expiresIn: 60);
        await using var proxy = await StartAsync();
        await proxy.GetAsync("api", "/v1/a");

        using var admin = new HttpClient();
        var json = JsonDocument.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/credentials"))).RootElement;
        var entry = Assert.Single(json.GetProperty("credentials").EnumerateArray());
        Assert.Equal("api-token", entry.GetProperty("name").GetString());
        Assert.Equal("OAuth2ClientCredentials", entry.GetProperty("source").GetString());
        Assert.Equal("valid", entry.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.String, entry.GetProperty("expiresAt").ValueKind);

        _tokens.GoDown();
        _time.Advance(TimeSpan.FromSeconds(61));
        await proxy.GetAsync("api", "/v1/b");
        entry = JsonDocument.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/credentials"))).RootElement.GetProperty("credentials")[0];
        Assert.Equal("expired", entry.GetProperty("state").GetString());
        Assert.Contains("unreachable", entry.GetProperty("lastError").GetString());
    }

    [Fact]
    public async Task Revoking_a_credential_on_the_admin_port_makes_the_next_request_fetch_a_new_one()
    {
        _tokens.Succeed(expiresIn: 3600);
        await using var proxy = await StartAsync();
        await proxy.GetAsync("api", "/v1/a");

        var revoke = await proxy.AdminPostAsync("/credentials/api-token/revoke");
        var unknown = await proxy.AdminPostAsync("/credentials/nope/revoke");
        await proxy.GetAsync("api", "/v1/b");

        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(2, _tokens.TokenRequests);
        var tokens = _tokens.IssuedTokens.ToArray();
        Assert.Equal(["Bearer " + tokens[0], "Bearer " + tokens[1]], UpstreamAuthorizations());
    }

    [Fact]
    public async Task A_fetch_in_flight_when_the_credential_is_revoked_does_not_undo_the_revocation()
    {
        _tokens.Succeed(expiresIn: 3600, delay: TimeSpan.FromMilliseconds(800));
        await using var proxy = await StartAsync();
        using var admin = new HttpClient();

        var first = proxy.GetAsync("api", "/v1/a");
        // Revoke while the fetch is in flight, as /credentials reports it.
        for (var i = 0; i < 200 && !(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/credentials"))).Contains("\"fetching\""); i++)
        {
            await Task.Delay(10);
        }

        Assert.Contains("\"fetching\"", await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/credentials")));
        Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/credentials/api-token/revoke")).StatusCode);
        Assert.False(first.IsCompleted);
        // The request that was already waiting gets the value fetched for it...
        Assert.Equal(HttpStatusCode.OK, (await first).Response.StatusCode);

        // ...but it was not cached: the next request fetches anew.
        _tokens.Succeed(expiresIn: 3600);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/b")).Response.StatusCode);
        Assert.Equal(2, _tokens.TokenRequests);
        var tokens = _tokens.IssuedTokens.ToArray();
        Assert.Equal(["Bearer " + tokens[0], "Bearer " + tokens[1]], UpstreamAuthorizations());
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        // Bounded poll for background work (the refresh runs on the thread pool); not a timing assertion.
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(condition(), "condition not reached within 5 s");
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _tokens.Dispose();
        _config.Dispose();
    }
}
