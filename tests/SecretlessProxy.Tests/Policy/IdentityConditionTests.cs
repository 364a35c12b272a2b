using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Identity;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Policy;

/// <summary>
/// The workload identity through a real proxy: a verified projected-token file decides Identity
/// conditions, and without a valid identity no credential is issued (503 with the reason).
/// </summary>
public sealed class IdentityConditionTests : IDisposable
{
    private const string Issuer = "https://kubernetes.default.svc";
    private const string Audience = "secretless-proxy";
    private const string Exporter = "system:serviceaccount:jobs:exporter";

    private readonly TokenFileIdentityHarness _identity = new();
    private readonly TokenFileIdentityHarness.TestKey _key = TokenFileIdentityHarness.RsaKey();
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _apiKey = "identity-key-" + Guid.NewGuid().ToString("N");

    public IdentityConditionTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        _identity.ServeJwks(_key);
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Set("Identity", new JsonObject
            {
                ["Source"] = "TokenFile",
                ["Path"] = _identity.TokenPath,
                ["Issuer"] = Issuer,
                ["Audience"] = Audience,
                ["JwksUrl"] = _identity.JwksUrl.ToString(),
                ["AllowLoopbackSquatting"] = true,
                ["ClockSkew"] = "00:00:05",
            })
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _apiKey) });
    }

    private static JsonObject PolicyFor(JsonObject? identity, string pathPrefix = "/")
    {
        var policy = TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], pathPrefix), "key", "X-Api-Key", "{token}");
        if (identity is not null)
        {
            policy["Identity"] = identity;
        }

        return policy;
    }

    private string WriteToken(string subject, string ns = "jobs", string serviceAccount = "exporter", TokenFileIdentityHarness.TestKey? key = null)
    {
        var token = _identity.Sign(key ?? _key, _identity.Claims(Issuer, Audience, subject, ns, serviceAccount));
        _identity.WriteToken(token);
        return token;
    }

    private async Task<ProxyHarness> StartAsync(params string[] tokens)
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _identity.Time);
        // The workload token is a bearer secret too: it must never be emitted.
        proxy.NeverEmit(tokens.Append(_apiKey).ToArray());
        return proxy;
    }

    private static string Detail(string body) => JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString()!;

    [Fact]
    public async Task A_verified_identity_with_an_allowed_subject_gets_the_credential_and_is_in_the_audit_record()
    {
        var token = WriteToken(Exporter);
        _config.Policy("export", PolicyFor(new JsonObject { ["Subjects"] = new JsonArray(Exporter), ["Namespaces"] = new JsonArray("jobs"), ["ServiceAccounts"] = new JsonArray("exporter") }));
        await using var proxy = await StartAsync(token);

        var (response, _) = await proxy.GetAsync("api", "/v1/export");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(_apiKey, Assert.Single(_upstream.LogEntries).RequestMessage.Headers!.First(h => h.Key.Equals("X-Api-Key", StringComparison.OrdinalIgnoreCase)).Value.Single());
        using var admin = new HttpClient();
        var decision = JsonDocument.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=1"))).RootElement.GetProperty("decisions")[0];
        Assert.Equal(Exporter, decision.GetProperty("identity").GetProperty("subject").GetString());
    }

    [Theory]
    [InlineData("Subjects", "system:serviceaccount:jobs:other", "jobs", "exporter", "does not allow the workload identity's subject")]
    [InlineData("Namespaces", Exporter, "payments", "exporter", "does not allow the workload identity's namespace")]
    [InlineData("ServiceAccounts", Exporter, "jobs", "reporter", "does not allow the workload identity's service account")]
    public async Task An_identity_whose_claims_the_policy_does_not_allow_is_denied_naming_the_claim(string condition, string subject, string ns, string serviceAccount, string expected)
    {
        var token = WriteToken(subject, ns, serviceAccount);
        var allowed = condition switch { "Subjects" => Exporter, "Namespaces" => "jobs", _ => "exporter" };
        _config.Policy("export", PolicyFor(new JsonObject { [condition] = new JsonArray(allowed) }));
        await using var proxy = await StartAsync(token);

        var (response, body) = await proxy.GetAsync("api", "/v1/export");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains(expected, Detail(body));
        Assert.DoesNotContain(allowed, Detail(body));
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task An_expired_identity_means_no_credential_until_a_rotated_valid_token_appears()
    {
        var first = WriteToken(Exporter);
        // A policy without Identity conditions: still, no credential is issued without a valid identity.
        _config.Policy("any", PolicyFor(null));
        await using var proxy = await StartAsync(first);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/a")).Response.StatusCode);

        _identity.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(6));
        var (expired, body) = await proxy.GetAsync("api", "/b");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, expired.StatusCode);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("urn:secretless-proxy:problem:identity-unavailable", problem.GetProperty("type").GetString());
        Assert.Contains("the workload identity is not valid: identity token expired at", problem.GetProperty("detail").GetString());
        Assert.Single(_upstream.LogEntries);

        // The kubelet rotates the projected token (a longer subject keeps the file's length different).
        var second = WriteToken(Exporter + "-rotated");
        proxy.NeverEmit(second);
        _identity.AdvancePastStatInterval();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/c")).Response.StatusCode);
        Assert.Equal(2, _upstream.LogEntries.Count());
    }

    [Fact]
    public async Task A_token_signed_by_another_key_is_not_an_identity()
    {
        var forged = WriteToken(Exporter, key: TokenFileIdentityHarness.RsaKey(_key.Kid));
        _config.Policy("export", PolicyFor(new JsonObject { ["Subjects"] = new JsonArray(Exporter) }));
        await using var proxy = await StartAsync(forged);

        var (response, body) = await proxy.GetAsync("api", "/v1/export");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("signature does not verify", Detail(body));
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task A_policy_naming_identity_conditions_needs_a_configured_identity()
    {
        _config.Section.Remove("Identity");
        _config.Policy("export", PolicyFor(new JsonObject { ["Subjects"] = new JsonArray(Exporter) }));

        var ex = await Assert.ThrowsAsync<SecretlessProxy.Configuration.InvalidConfigurationException>(() => ProxyHarness.StartAsync(_config.Write()));

        Assert.Contains(ex.Errors, e => e.Key == "SecretlessProxy:Policies:export:Identity" && e.Message.Contains("configure SecretlessProxy:Identity"));
    }

    [Fact]
    public async Task The_workload_token_is_the_client_assertion_of_an_oauth2_credential_with_no_secret_anywhere()
    {
        var token = WriteToken(Exporter);
        using var idp = new FakeTokenEndpoint();
        idp.Succeed();
        _config.Credential("federated", new JsonObject
        {
            ["Source"] = "OAuth2ClientCredentials",
            ["TokenUrl"] = idp.TokenUrl,
            ["AllowLoopbackSquatting"] = true,
            ["ClientId"] = "exporter-app",
            ["ClientAssertion"] = "WorkloadToken",
            ["Scopes"] = new JsonArray("export.read"),
        }).Policy("export", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"]), "federated"));
        await using var proxy = await StartAsync(token);
        proxy.NeverEmit(() => idp.IssuedTokens);

        var (response, _) = await proxy.GetAsync("api", "/v1/export");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var grant = Assert.Single(idp.Server.LogEntries).RequestMessage;
        var form = grant.Body!.Split('&').Select(p => p.Split('=')).ToDictionary(p => Uri.UnescapeDataString(p[0]), p => Uri.UnescapeDataString(p[1].Replace('+', ' ')));
        Assert.Equal("client_credentials", form["grant_type"]);
        Assert.Equal("exporter-app", form["client_id"]);
        Assert.Equal("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", form["client_assertion_type"]);
        Assert.Equal(token, form["client_assertion"]);
        Assert.False(form.ContainsKey("client_secret"));
        Assert.Null(grant.Headers!.FirstOrDefault(h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase)).Value);
        Assert.Equal("Bearer " + idp.IssuedTokens.Single(), _upstream.LogEntries.Single().RequestMessage.Headers!["Authorization"].Single());
    }

    [Fact]
    public async Task A_client_assertion_needs_a_configured_identity_and_no_client_secret()
    {
        _config.Section.Remove("Identity");
        _config.Credential("federated", new JsonObject
        {
            ["Source"] = "OAuth2ClientCredentials",
            ["TokenUrl"] = "https://idp.example.com/token",
            ["ClientId"] = "exporter-app",
            ["ClientAssertion"] = "WorkloadToken",
            ["ClientSecretFile"] = _config.SecretFile("client-secret", "unused"),
        }).Policy("export", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"]), "federated"));

        var ex = await Assert.ThrowsAsync<SecretlessProxy.Configuration.InvalidConfigurationException>(() => ProxyHarness.StartAsync(_config.Write()));

        Assert.Contains(ex.Errors, e => e.Key == "SecretlessProxy:Credentials:federated:ClientAssertion" && e.Message.Contains("configure SecretlessProxy:Identity"));
        Assert.Contains(ex.Errors, e => e.Key == "SecretlessProxy:Credentials:federated:ClientSecretFile" && e.Message == "give ClientSecretFile or ClientAssertion, not both");
    }

    [Fact]
    public async Task Signing_keys_fetched_over_a_unix_socket_verify_the_identity()
    {
        // A loopback key endpoint is reached over a socket the app cannot create: a squatter on a
        // port could serve its own keys and mint any identity.
        var socket = Path.Combine(_config.Directory, "keys.sock");
        await using var keys = FakeIssuer.OnUnixSocket(socket);
        keys.Answer = _ => new JsonObject { ["keys"] = new JsonArray((JsonNode)_key.Jwk()) }.ToJsonString();
        var identity = _config.Section["Identity"]!.AsObject();
        identity["JwksUrl"] = "http://localhost/keys";
        identity.Remove("AllowLoopbackSquatting");
        identity["UnixSocket"] = socket;
        var token = WriteToken(Exporter);
        _config.Policy("export", PolicyFor(new JsonObject { ["Subjects"] = new JsonArray(Exporter) }));
        await using var proxy = await StartAsync(token);

        var (response, body) = await proxy.GetAsync("api", "/v1/export");

        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Contains(keys.Requests, r => r.StartsWith("GET /keys HTTP/1.1\r\n", StringComparison.Ordinal) && r.Contains("\r\nHost: localhost\r\n", StringComparison.Ordinal));
        Assert.Equal(0, _identity.JwksRequests);
    }

    [Theory]
    [InlineData("unverified", "SecretlessProxy:Policies:export:Identity", "needs a verified workload identity")]
    [InlineData("no-audience", "SecretlessProxy:Identity:Audience", "is required when the token is verified")]
    [InlineData("http-keys", "SecretlessProxy:Identity:JwksUrl", "is not an absolute https URL")]
    public async Task Identity_claims_are_trusted_only_from_a_token_verified_for_this_proxy(string variant, string key, string message)
    {
        var identity = _config.Section["Identity"]!.AsObject();
        switch (variant)
        {
            case "unverified":
                identity.Remove("JwksUrl");
                identity.Remove("Issuer");
                identity.Remove("AllowLoopbackSquatting");
                break;
            case "no-audience":
                identity.Remove("Audience");
                break;
            default:
                identity["JwksUrl"] = "http://keys.example.com/jwks";
                break;
        }

        _config.Policy("export", PolicyFor(new JsonObject { ["Subjects"] = new JsonArray(Exporter) }));

        var ex = await Assert.ThrowsAsync<SecretlessProxy.Configuration.InvalidConfigurationException>(() => ProxyHarness.StartAsync(_config.Write()));

        Assert.Contains(ex.Errors, e => e.Key == key && e.Message.Contains(message));
    }

    [Fact]
    public async Task An_audience_condition_needs_one_of_the_tokens_audiences()
    {
        var token = WriteToken(Exporter);
        _config.Policy("export", PolicyFor(new JsonObject { ["Audiences"] = new JsonArray("vault") }, "/vault/"))
            .Policy("mine", PolicyFor(new JsonObject { ["Audiences"] = new JsonArray(Audience, "other") }, "/mine/"));
        await using var proxy = await StartAsync(token);

        var (denied, body) = await proxy.GetAsync("api", "/vault/x");
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("does not allow the workload identity's audience", Detail(body));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/mine/x")).Response.StatusCode);
    }

    public void Dispose()
    {
        _upstream.Stop();
        _config.Dispose();
        _identity.Dispose();
    }
}
