using System.Net;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Telemetry;

/// <summary>
/// Error paths are where secrets leak: exception messages, bodies echoed into errors, values that
/// cannot be injected. Each scenario here fails closed and its harness scans everything emitted.
/// </summary>
public sealed class ErrorPathLeakTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly FakeTokenEndpoint _tokens = new();
    private readonly TestConfig _config = new();
    private readonly string _clientSecret = "client-secret-" + Guid.NewGuid().ToString("N");

    public ErrorPathLeakTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Credential("api-token", new JsonObject
            {
                ["Source"] = "OAuth2ClientCredentials",
                ["TokenUrl"] = _tokens.TokenUrl,
                ["AllowLoopbackSquatting"] = true,
                ["ClientId"] = "orders-service",
                ["ClientSecretFile"] = _config.SecretFile("client-secret", _clientSecret),
                ["RetryAttempts"] = 0,
            })
            .Policy("api-read", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "api-token"));
    }

    private async Task<ProxyHarness> StartAsync(params string[] secrets)
    {
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(_clientSecret);
        harness.NeverEmit(secrets);
        return harness;
    }

    [Fact]
    public async Task Connection_dropped_mid_answer_by_the_token_endpoint()
    {
        var partial = "partial-token-" + Guid.NewGuid().ToString("N");
        _tokens.Server.ResetMappings();
        _tokens.Server.Given(Request.Create().WithPath(FakeTokenEndpoint.Path)).RespondWith(
            Response.Create().WithStatusCode(200).WithBody("{\"access_token\":\"" + partial + "\",\"expires_in\":60}").WithFault(WireMock.ResponseBuilders.FaultType.MALFORMED_RESPONSE_CHUNK));
        await using var proxy = await StartAsync(partial);

        var (response, body) = await proxy.GetAsync("api", "/v1/a");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("token endpoint", body);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Token_with_a_header_breaking_value_is_refused_and_never_emitted()
    {
        var evil = "evil-" + Guid.NewGuid().ToString("N");
        _tokens.Respond(200, "{\"access_token\":\"" + evil + "\\r\\nX-Injected: yes\",\"expires_in\":60}");
        await using var proxy = await StartAsync(evil);

        var (response, body) = await proxy.GetAsync("api", "/v1/a");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("control characters", body);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Token_endpoint_answering_with_the_client_secret_in_a_5xx_body()
    {
        _tokens.Respond(502, "upstream auth failed for client_secret=" + _clientSecret, "text/plain");
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/v1/a");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("answered 502", body);
    }

    [Fact]
    public async Task File_credential_that_is_a_directory_fails_closed_with_a_clear_reason()
    {
        _config.Credential("dir-key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("placeholder", "x") })
            .Policy("dir-policy", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/dir/"), "dir-key", "X-Key", "{token}"));
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_clientSecret);

        // Replaced after start, as a broken volume mount would.
        File.Delete(Path.Combine(_config.Directory, "placeholder"));
        Directory.CreateDirectory(Path.Combine(_config.Directory, "placeholder"));

        var (response, body) = await proxy.GetAsync("api", "/dir/a");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("dir-key", body);
        Assert.Empty(_upstream.LogEntries);
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _tokens.Dispose();
        _config.Dispose();
    }
}
