using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// OAuth 2.0 token exchange (RFC 8693) through the real proxy: the workload token goes out as the
/// subject token and nothing else authenticates the proxy; the exchanged token reaches the
/// upstream; expiry, errors and configuration mistakes behave as a user expects.
/// </summary>
public sealed class TokenExchangeTests : IDisposable
{
    private const string TokenPath = "/v1/token";
    private const string JwtType = "urn:ietf:params:oauth:token-type:jwt";
    private const string AccessTokenType = "urn:ietf:params:oauth:token-type:access_token";

    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly WireMockServer _sts = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly ConcurrentQueue<string> _issued = new();
    private readonly string _workloadToken;
    private int _count;

    public TokenExchangeTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        _workloadToken = WorkloadToken.Write(_config, _time.GetUtcNow());
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Policy("gcs", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/storage/"), "gcp-token"));
        Credential();
    }

    private string TokenUrl => _sts.LoopbackUrl() + TokenPath;

    private void Credential(Action<JsonObject>? change = null)
    {
        var definition = new JsonObject
        {
            ["Source"] = "OAuth2TokenExchange",
            ["TokenUrl"] = TokenUrl,
            ["AllowLoopbackSquatting"] = true,
            ["Audience"] = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pool/providers/k8s",
            ["Scopes"] = new JsonArray("https://www.googleapis.com/auth/cloud-platform"),
            ["RequestedTokenType"] = AccessTokenType,
            ["RetryDelay"] = "00:00:00",
            // Refresh exactly at RefreshAt, as these tests step the clock to it (spreading: RefreshSpreadingTests).
            ["RefreshJitter"] = 0,
            ["SpreadFirstRefresh"] = false,
        };
        change?.Invoke(definition);
        _config.Credential("gcp-token", definition);
    }

    /// <summary>Google STS's answer shape (sts.googleapis.com/v1/token): a new token per call.</summary>
    private void ServeGoogleShaped(int expiresIn = 3599) =>
        _sts.Given(Request.Create().WithPath(TokenPath).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json; charset=utf-8").WithBody(_ =>
            {
                var token = "ya29.exchanged-" + Guid.NewGuid().ToString("N")[..12] + "-" + Interlocked.Increment(ref _count);
                _issued.Enqueue(token);
                return new JsonObject
                {
                    ["access_token"] = token,
                    ["issued_token_type"] = AccessTokenType,
                    ["token_type"] = "Bearer",
                    ["expires_in"] = expiresIn,
                }.ToJsonString();
            }));

    private void Respond(int status, string body) =>
        _sts.Given(Request.Create().WithPath(TokenPath).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", "application/json").WithBody(body));

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_config.Write(), _time);
        harness.NeverEmit(_workloadToken);
        harness.NeverEmit(() => _issued);
        return harness;
    }

    private int TokenRequests => _sts.LogEntries.Count(e => e.RequestMessage.Path == TokenPath);

    private Dictionary<string, string> LastForm()
    {
        var entry = _sts.LogEntries.Last(e => e.RequestMessage.Path == TokenPath).RequestMessage;
        return QueryHelpers.ParseQuery("?" + entry.Body).ToDictionary(p => p.Key, p => p.Value.Single()!);
    }

    private string[] UpstreamAuthorizations() =>
        _upstream.LogEntries.Select(e => e.RequestMessage.Headers!.First(h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase)).Value.Single()).ToArray();

    private static string ProblemDetail(HttpResponseMessage response, string body, string type = "credential-unavailable")
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("urn:secretless-proxy:problem:" + type, problem.GetProperty("type").GetString());
        return problem.GetProperty("detail").GetString()!;
    }

    [Fact]
    public async Task Google_sts_exchange_sends_the_workload_token_as_subject_and_injects_the_result()
    {
        ServeGoogleShaped();
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/storage/v1/b/orders");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok", body);
        var token = Assert.Single(_issued);
        Assert.Equal(["Bearer " + token], UpstreamAuthorizations());

        // The exact RFC 8693 request Google's STS takes, form-encoded; nothing else authenticates it.
        var request = _sts.LogEntries.Single().RequestMessage;
        Assert.Equal("POST", request.Method);
        Assert.StartsWith("application/x-www-form-urlencoded", request.Headers!["Content-Type"].Single());
        Assert.DoesNotContain(request.Headers!, h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["grant_type"] = "urn:ietf:params:oauth:grant-type:token-exchange",
                ["subject_token"] = _workloadToken,
                ["subject_token_type"] = JwtType,
                ["audience"] = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pool/providers/k8s",
                ["scope"] = "https://www.googleapis.com/auth/cloud-platform",
                ["requested_token_type"] = AccessTokenType,
            },
            LastForm());
    }

    [Fact]
    public async Task Every_optional_field_is_sent_as_configured()
    {
        Credential(c =>
        {
            c["Scopes"] = new JsonArray("orders.read", "orders.write");
            c["Resource"] = "https://orders.example.com/";
            c["SubjectTokenType"] = "urn:ietf:params:oauth:token-type:id_token";
            c["ClientId"] = "public-client";
            c["Parameters"] = new JsonObject { ["options"] = "{\"userProject\":\"p1\"}" };
        });
        ServeGoogleShaped();
        await using var proxy = await StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/storage/x")).Response.StatusCode);

        var form = LastForm();
        Assert.Equal(_workloadToken, form["subject_token"]);
        Assert.Equal("urn:ietf:params:oauth:token-type:id_token", form["subject_token_type"]);
        Assert.Equal("orders.read orders.write", form["scope"]);
        Assert.Equal("https://orders.example.com/", form["resource"]);
        Assert.Equal("public-client", form["client_id"]);
        Assert.Equal("{\"userProject\":\"p1\"}", form["options"]);
        Assert.Equal(9, form.Count);
        Assert.False(form.ContainsKey("client_secret"));
    }

    [Fact]
    public async Task Exchanged_token_is_replaced_after_expiry_and_an_expired_one_is_never_sent()
    {
        ServeGoogleShaped(expiresIn: 120);
        await using var proxy = await StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/storage/a")).Response.StatusCode);
        var first = Assert.Single(_issued);

        // Past expiry (minus the skew): the next request waits for a new exchange.
        _time.Advance(TimeSpan.FromSeconds(118));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/storage/b")).Response.StatusCode);

        Assert.Equal(2, TokenRequests);
        var second = _issued.Last();
        Assert.NotEqual(first, second);
        Assert.Equal(["Bearer " + first, "Bearer " + second], UpstreamAuthorizations());
        Assert.Equal(_workloadToken, LastForm()["subject_token"]);
    }

    [Fact]
    public async Task Refreshes_ahead_of_expiry_while_the_valid_token_keeps_serving()
    {
        ServeGoogleShaped(expiresIn: 100);
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/storage/a")).Response.StatusCode);

        var firstExpiry = proxy.App.State.Cache.GetStatuses().Single().ExpiresAt;
        _time.Advance(TimeSpan.FromSeconds(85));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/storage/b")).Response.StatusCode);
        // The endpoint issuing the token is not yet the cache holding it: wait for the new expiry.
        await WaitUntilAsync(() => _issued.Count == 2 && proxy.App.State.Cache.GetStatuses().Single().ExpiresAt > firstExpiry);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/storage/c")).Response.StatusCode);

        var auth = UpstreamAuthorizations();
        Assert.Equal("Bearer " + _issued.First(), auth[1]);
        Assert.Equal("Bearer " + _issued.Last(), auth[2]);
    }

    [Fact]
    public async Task An_error_that_echoes_the_subject_token_gives_503_naming_only_the_error_code()
    {
        Respond(400, "{\"error\":\"invalid_grant\",\"error_description\":\"The subject token " + _workloadToken + " is not trusted\"}");
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/storage/a");

        var detail = ProblemDetail(response, body);
        Assert.Contains("gcp-token", detail);
        Assert.Contains("token exchange endpoint answered 400 (invalid_grant)", detail);
        Assert.DoesNotContain("not trusted", body);
        Assert.Equal(1, TokenRequests); // a 400 is not transient: no retry
        Assert.Empty(_upstream.LogEntries);
    }

    [Theory]
    [InlineData(400, "{\"error\":\"invalid_target\"}", "answered 400 (invalid_target)")]
    [InlineData(400, "{\"error\":\"something the server made up\"}", "answered 400")]
    [InlineData(401, "<html>no</html>", "answered 401")]
    [InlineData(200, "{\"issued_token_type\":\"urn:ietf:params:oauth:token-type:access_token\"}", "has no access_token")]
    [InlineData(200, "{\"access_token\":\"id.token.value\",\"issued_token_type\":\"urn:ietf:params:oauth:token-type:id_token\",\"token_type\":\"N_A\"}", "another type than RequestedTokenType")]
    [InlineData(200, "not json", "not JSON")]
    public async Task Bad_answers_give_503_with_a_safe_reason(int status, string body, string reason)
    {
        Respond(status, body);
        await using var proxy = await StartAsync();

        var (response, responseBody) = await proxy.GetAsync("api", "/storage/a");

        var detail = ProblemDetail(response, responseBody);
        Assert.Contains(reason, detail);
        Assert.DoesNotContain("made up", detail);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Server_errors_are_retried_within_one_fetch_then_give_503()
    {
        Credential(c => c["RetryAttempts"] = 2);
        Respond(503, "{\"error\":\"temporarily_unavailable\"}");
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/storage/a");

        Assert.Contains("answered 503", ProblemDetail(response, body));
        Assert.Equal(3, TokenRequests);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task No_workload_token_gives_503_without_calling_the_token_endpoint()
    {
        ServeGoogleShaped();
        File.Delete(Path.Combine(_config.Directory, WorkloadToken.FileName));
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/storage/a");

        // The proxy refuses before the source is asked (a request needs a valid identity to get any
        // credential); the source's own check would say "no valid workload identity to use as the subject token".
        ProblemDetail(response, body, "identity-unavailable");
        Assert.Equal(0, TokenRequests);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Configuration_errors_are_named_by_key()
    {
        var key = "SecretlessProxy:Credentials:gcp-token";
        Credential(c =>
        {
            c.Remove("TokenUrl");
            c["SubjectTokenType"] = "jwt";
            c["ClientSecretFile"] = "secret.txt";
            c["Scopes"] = new JsonArray("a b");
            c["Parameters"] = new JsonObject { ["subject_token"] = "from-config" };
        });

        var errors = await CompileErrorsAsync(_config);

        Assert.Contains(errors, e => e.Key == key + ":TokenUrl" && e.Message.Contains("is required"));
        Assert.Contains(errors, e => e.Key == key + ":SubjectTokenType" && e.Message.Contains("not a token type URI"));
        Assert.Contains(errors, e => e.Key == key + ":ClientSecretFile" && e.Message.Contains("does not apply"));
        Assert.Contains(errors, e => e.Key == key + ":Scopes:0");
        Assert.Contains(errors, e => e.Key == key + ":Parameters:subject_token");
        Assert.Equal(5, errors.Count);
    }

    [Fact]
    public async Task Without_an_identity_configured_the_source_is_rejected()
    {
        _config.Set("Identity", null);
        _config.Section.Remove("Identity");
        Credential(c => c["TokenUrl"] = "ftp://sts.example.com/token");

        var errors = await CompileErrorsAsync(_config);

        Assert.Contains(errors, e => e.Key == "SecretlessProxy:Credentials:gcp-token:Source" && e.Message.Contains("needs the workload identity: configure SecretlessProxy:Identity"));
        Assert.Contains(errors, e => e.Key == "SecretlessProxy:Credentials:gcp-token:TokenUrl" && e.Message.Contains("not an absolute https URL"));
    }

    [Theory]
    [InlineData("http://sts.example.com/v1/token")]
    [InlineData("https://user:pw@sts.example.com/v1/token")]
    [InlineData("sts.example.com/v1/token")]
    public async Task Token_url_must_be_https_unless_loopback(string url)
    {
        Credential(c => c["TokenUrl"] = url);

        var errors = await CompileErrorsAsync(_config);

        Assert.All(errors, e => Assert.Equal("SecretlessProxy:Credentials:gcp-token:TokenUrl", e.Key));
        Assert.Contains(errors, e => e.Message.Contains("http only for loopback"));
        Assert.All(errors, e => Assert.DoesNotContain("pw@", e.Message));
    }

    internal static async Task<List<ConfigError>> CompileErrorsAsync(TestConfig config)
    {
        using var client = new HttpMessageInvoker(new SocketsHttpHandler());
        var result = await new ConfigLoader(TimeProvider.System, client).LoadAsync(config.Write(), includeEnvironment: false);
        return result.Errors.ToList();
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(condition());
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _sts.Dispose();
        _config.Dispose();
    }
}

/// <summary>A workload identity token (a signed JWT, valid for a day on the test's clock) in the config's folder, and the Identity section that reads it.</summary>
internal static class WorkloadToken
{
    public const string FileName = "workload-token";

    public static string Write(TestConfig config, DateTimeOffset now)
    {
        using var rsa = RSA.Create(2048);
        var claims = new JsonObject
        {
            ["iss"] = "https://kubernetes.default.svc",
            ["sub"] = "system:serviceaccount:orders:api",
            ["aud"] = "secretless-proxy",
            ["iat"] = now.ToUnixTimeSeconds(),
            ["nbf"] = now.ToUnixTimeSeconds(),
            ["exp"] = now.AddDays(1).ToUnixTimeSeconds(),
            ["jti"] = Guid.NewGuid().ToString("N"),
        };
        var token = new JsonWebTokenHandler().CreateToken(claims.ToJsonString(), new SigningCredentials(new RsaSecurityKey(rsa) { KeyId = "k1" }, SecurityAlgorithms.RsaSha256));
        File.WriteAllText(Path.Combine(config.Directory, FileName), token + "\n");
        config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = FileName });
        return token;
    }
}
