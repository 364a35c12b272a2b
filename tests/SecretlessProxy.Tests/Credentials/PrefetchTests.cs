using System.Net;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// <c>PrefetchWithin</c> through the real proxy and a token endpoint: the proxy fetches the token on
/// its own within the window, before any request, and the first request is then served from the
/// cache; without it, nothing is fetched until a request needs the token.
/// </summary>
public sealed class PrefetchTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly FakeTokenEndpoint _tokens = new();
    private readonly TestConfig _config = new();
    private readonly string _clientSecret = "client-secret-" + Guid.NewGuid().ToString("N");

    public PrefetchTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        _tokens.Succeed(expiresIn: 3600);
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Policy("api-read", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "api-token"));
    }

    private async Task<ProxyHarness> StartAsync(string? prefetchWithin)
    {
        var definition = new JsonObject
        {
            ["Source"] = "OAuth2ClientCredentials",
            ["TokenUrl"] = _tokens.TokenUrl,
            ["AllowLoopbackSquatting"] = true,
            ["ClientId"] = "orders-service",
            ["ClientSecretFile"] = _config.SecretFile("client-secret", _clientSecret),
        };
        if (prefetchWithin is not null)
        {
            definition["PrefetchWithin"] = prefetchWithin;
        }

        _config.Credential("api-token", definition);
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(_clientSecret);
        harness.NeverEmit(() => _tokens.IssuedTokens);
        return harness;
    }

    [Fact]
    public async Task The_token_is_fetched_within_the_window_without_a_request_and_the_first_request_uses_it()
    {
        await using var proxy = await StartAsync("00:00:01");

        await Poll.UntilAsync(() => proxy.App.State.Cache.GetStatuses().Single().State == "valid", "the prefetched token to be cached");
        Assert.Equal(1, _tokens.TokenRequests);
        Assert.Empty(_upstream.LogEntries);

        var (response, _) = await proxy.GetAsync("api", "/v1/items");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, _tokens.TokenRequests);
        var header = _upstream.LogEntries.Single().RequestMessage.Headers!.First(h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase)).Value.Single();
        Assert.Equal("Bearer " + Assert.Single(_tokens.IssuedTokens), header);
        Assert.Contains(proxy.Spans, s => (string?)s.GetTagItem("secretless.credential.cache") == "hit");
    }

    [Fact]
    public async Task Without_prefetch_nothing_is_fetched_until_a_request_needs_it()
    {
        await using var proxy = await StartAsync(null);

        // Nothing to wait for: the status says no fetch ever started.
        Assert.Equal("empty", proxy.App.State.Cache.GetStatuses().Single().State);
        Assert.Equal(0, _tokens.TokenRequests);

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/items")).Response.StatusCode);
        Assert.Equal(1, _tokens.TokenRequests);
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _tokens.Dispose();
        _config.Dispose();
    }
}
