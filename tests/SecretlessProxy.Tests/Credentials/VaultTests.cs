using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
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
/// The Vault source through the real proxy, with WireMock as Vault: login with the workload token,
/// KV v2 and dynamic secrets, lease renewal, re-issue and revocation, failures that fail closed
/// without repeating Vault's error text, and configuration errors by key.
/// </summary>
public sealed class VaultTests : IDisposable
{
    private const string Root = "SecretlessProxy:Credentials:vault";

    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly FakeVault _vault = new();
    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly string _workloadToken;
    private readonly string _kvValue = "kv-api-key-" + Guid.NewGuid().ToString("N");
    private string? _configPath;

    public VaultTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        _workloadToken = WorkloadToken(_time.GetUtcNow());
        _config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _config.SecretFile("workload-token", _workloadToken) });
        _config.RouteListener("api", _upstream.LoopbackUrl());
        _vault.Login();
    }

    /// <summary>A Kubernetes-style projected token; the proxy does not verify it (no Issuer/JwksUrl), Vault would.</summary>
    internal static string WorkloadToken(DateTimeOffset now)
    {
        using var rsa = RSA.Create(2048);
        var claims = new JsonObject
        {
            ["iss"] = "https://kubernetes.default.svc",
            ["sub"] = "system:serviceaccount:shop:orders",
            ["aud"] = new JsonArray("vault"),
            ["iat"] = now.ToUnixTimeSeconds(),
            ["exp"] = now.AddDays(2).ToUnixTimeSeconds(),
        };
        return new JsonWebTokenHandler().CreateToken(claims.ToJsonString(), new SigningCredentials(new RsaSecurityKey(rsa.ExportParameters(true)) { KeyId = "k1" }, SecurityAlgorithms.RsaSha256));
    }

    private void KvCredential(Action<JsonObject>? change = null)
    {
        var definition = new JsonObject
        {
            ["Source"] = "Vault",
            ["Address"] = _vault.Address,
            ["AllowLoopbackSquatting"] = true,
            ["AuthMethod"] = "Jwt",
            ["Role"] = "orders",
            ["SecretPath"] = "secret/payments/api",
            ["Field"] = "api-key",
            ["RetryDelay"] = "00:00:00",
            // Refresh exactly at RefreshAt, as these tests step the clock to it (spreading: RefreshSpreadingTests).
            ["RefreshJitter"] = 0,
            ["SpreadFirstRefresh"] = false,
        };
        change?.Invoke(definition);
        _config.Credential("vault", definition)
            .Policy("api", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "vault", "X-Api-Key", "{token}"));
    }

    /// <summary>A Vault dynamic credential from <c>database/creds/orders</c>, logged in to with the workload token (jwt, role orders).</summary>
    internal static JsonObject DynamicDefinition(string vaultAddress) => new()
    {
        ["Source"] = "Vault",
        ["Address"] = vaultAddress,
        ["AllowLoopbackSquatting"] = true,
        ["AuthMethod"] = "Jwt",
        ["Role"] = "orders",
        ["DynamicPath"] = "database/creds/orders",
        ["RetryDelay"] = "00:00:00",
        // Refresh exactly at RefreshAt, as the tests using it step the clock to it (spreading: RefreshSpreadingTests).
        ["RefreshJitter"] = 0,
        ["SpreadFirstRefresh"] = false,
    };

    private void DynamicCredential(Action<JsonObject>? change = null)
    {
        var definition = DynamicDefinition(_vault.Address);
        change?.Invoke(definition);
        _config.Credential("vault", definition)
            .Policy("api", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"], "/v1/"),
                ["Credential"] = "vault",
                ["Inject"] = new JsonObject { ["Basic"] = true },
            });
    }

    private async Task<ProxyHarness> StartAsync()
    {
        _configPath = _config.Write();
        var harness = await ProxyHarness.StartAsync(_configPath, _time);
        harness.NeverEmit(_workloadToken, _kvValue);
        harness.NeverEmit(_vault.Secrets);
        return harness;
    }

    private string[] Upstream(string header) =>
        _upstream.LogEntries.Select(e => e.RequestMessage.Headers!.First(h => h.Key.Equals(header, StringComparison.OrdinalIgnoreCase)).Value.Single()).ToArray();

    private static string Basic(string user, string password) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + password));

    private static JsonElement Problem(HttpResponseMessage response, string body)
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        var problem = JsonDocument.Parse(body).RootElement.Clone();
        Assert.Equal("urn:secretless-proxy:problem:credential-unavailable", problem.GetProperty("type").GetString());
        return problem;
    }

    [Fact]
    public async Task Kv_value_is_injected_after_a_jwt_login_with_the_workload_token()
    {
        KvCredential();
        _vault.Kv("secret", "payments/api", new JsonObject { ["api-key"] = _kvValue, ["other"] = "not-this" });
        await using var proxy = await StartAsync();

        var (response, _) = await proxy.GetAsync("api", "/v1/orders");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal([_kvValue], Upstream("X-Api-Key"));

        var login = Assert.Single(_vault.Logins()).RequestMessage;
        Assert.Equal("POST", login.Method);
        Assert.Null(FakeVault.TokenOf(Assert.Single(_vault.Logins())));
        var body = FakeVault.BodyOf(Assert.Single(_vault.Logins()));
        Assert.Equal("orders", body.GetProperty("role").GetString());
        Assert.Equal(_workloadToken, body.GetProperty("jwt").GetString());
        Assert.Equal(2, body.EnumerateObject().Count());

        var read = Assert.Single(_vault.Requests("/v1/secret/data/payments/api"));
        Assert.Equal("GET", read.RequestMessage.Method);
        Assert.Equal(Assert.Single(_vault.ClientTokens), FakeVault.TokenOf(read));
        // The workload token goes to the login only: never as a Vault token, never upstream.
        Assert.All(_vault.Server.LogEntries.Where(e => e.RequestMessage.Path != "/v1/auth/jwt/login"), e =>
        {
            Assert.NotEqual(_workloadToken, FakeVault.TokenOf(e));
            Assert.DoesNotContain(_workloadToken, e.RequestMessage.Body ?? string.Empty, StringComparison.Ordinal);
        });
        Assert.DoesNotContain(_upstream.LogEntries.SelectMany(e => e.RequestMessage.Headers!.Values.SelectMany(v => v)), v => v.Contains(_workloadToken, StringComparison.Ordinal) || _vault.ClientTokens.Any(t => v.Contains(t, StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("Kubernetes", null, "/v1/auth/kubernetes/login")]
    [InlineData("Jwt", "oidc-ci", "/v1/auth/oidc-ci/login")]
    [InlineData("Kubernetes", "k8s/prod-eu", "/v1/auth/k8s/prod-eu/login")]
    public async Task Auth_method_and_mount_choose_the_login_path(string method, string? mount, string loginPath)
    {
        KvCredential(c =>
        {
            c["AuthMethod"] = method;
            if (mount is not null)
            {
                c["AuthMount"] = mount;
            }
        });
        _vault.Login(loginPath["/v1/auth/".Length..^"/login".Length]);
        _vault.Kv("secret", "payments/api", new JsonObject { ["api-key"] = _kvValue });
        await using var proxy = await StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/orders")).Response.StatusCode);

        var body = FakeVault.BodyOf(Assert.Single(_vault.Requests(loginPath)));
        Assert.Equal("orders", body.GetProperty("role").GetString());
        Assert.Equal(_workloadToken, body.GetProperty("jwt").GetString());
    }

    [Fact]
    public async Task Kv_secret_is_read_again_after_the_read_interval_so_a_rotation_reaches_requests()
    {
        KvCredential(c => c["DefaultLifetime"] = "00:05:00");
        _vault.Kv("secret", "payments/api", new JsonObject { ["api-key"] = _kvValue });
        var rotated = _kvValue + "-rotated";
        await using var proxy = await StartAsync();
        proxy.NeverEmit(rotated);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

        _vault.Kv("secret", "payments/api", new JsonObject { ["api-key"] = rotated });
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/b")).Response.StatusCode);
        Assert.Single(_vault.Requests("/v1/secret/data/payments/api"));

        // Past RefreshAt (80%) of the interval: read again in the background, then served.
        _time.Advance(TimeSpan.FromMinutes(3.5));
        await proxy.GetAsync("api", "/v1/c");
        await WaitUntilAsync(() => _vault.Requests("/v1/secret/data/payments/api").Count == 2);
        await WaitUntilAsync(() => proxy.App.State.Cache.GetStatuses().Single().State == "valid");
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/d")).Response.StatusCode);

        Assert.Equal([_kvValue, _kvValue, _kvValue, rotated], Upstream("X-Api-Key"));
        // The Vault token is cached: one login for both reads.
        Assert.Single(_vault.Logins());
        Assert.All(_vault.Requests("/v1/secret/data/payments/api"), e => Assert.Equal(_vault.ClientTokens[0], FakeVault.TokenOf(e)));
    }

    [Fact]
    public async Task Missing_field_gives_503_with_a_clear_reason_and_no_upstream_call()
    {
        KvCredential();
        _vault.Kv("secret", "payments/api", new JsonObject { ["apikey"] = _kvValue });
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/v1/orders");

        var detail = Problem(response, body).GetProperty("detail").GetString();
        Assert.Contains("Vault secret secret/payments/api has no field 'api-key'", detail);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Dynamic_credentials_are_injected_as_basic_from_one_read_then_renewed_then_reissued()
    {
        DynamicCredential();
        _vault.Dynamic("database/creds/orders", ttl: 600);
        _vault.Renewals(600);
        await using var proxy = await StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);
        var reads = () => _vault.Requests("/v1/database/creds/orders");
        var renewals = () => _vault.Requests("/v1/sys/leases/renew");
        // User and password from one answer: one read per issue, never one per field.
        Assert.Single(reads());
        Assert.Equal(Assert.Single(_vault.ClientTokens), FakeVault.TokenOf(reads()[0]));
        var first = Basic(_vault.Usernames[0], _vault.Passwords[0]);
        Assert.Equal([first], Upstream("Authorization"));

        // Before expiry (past 80% of 600 s): the lease is renewed, the same user kept.
        _time.Advance(TimeSpan.FromSeconds(490));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/b")).Response.StatusCode);
        await WaitUntilAsync(() => renewals().Count == 1 && proxy.App.State.Cache.GetStatuses().Single().State == "valid");
        var renew = FakeVault.BodyOf(Assert.Single(renewals()));
        Assert.Equal(_vault.LeaseIds[0], renew.GetProperty("lease_id").GetString());
        Assert.Equal(600, renew.GetProperty("increment").GetInt32());
        Assert.Equal(_vault.ClientTokens[0], FakeVault.TokenOf(renewals()[0]));
        Assert.Single(reads());

        // Past the old expiry, within the renewed one: still the first user, no new read.
        _time.Advance(TimeSpan.FromSeconds(200));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/c")).Response.StatusCode);
        Assert.Single(reads());

        // Near the max TTL Vault grants less than asked: new credentials are issued, from one read.
        _vault.Renewals(120);
        _time.Advance(TimeSpan.FromSeconds(300));
        await proxy.GetAsync("api", "/v1/d");
        await WaitUntilAsync(() => reads().Count == 2 && proxy.App.State.Cache.GetStatuses().Single().State == "valid");
        Assert.Equal(2, renewals().Count);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/e")).Response.StatusCode);

        var second = Basic(_vault.Usernames[1], _vault.Passwords[1]);
        Assert.Equal([first, first, first, first, second], Upstream("Authorization"));
        // The superseded lease is left to run out (requests that took it may be in flight): no revoke yet.
        Assert.Empty(_vault.Requests("/v1/sys/leases/revoke"));
        Assert.Single(_vault.Logins());

        // Operators see the lease's life in the proxy's own log (by lease id, never a password).
        var events = proxy.Logs.Entries.Where(e => e.Category.EndsWith("VaultCredentialSource", StringComparison.Ordinal)).Select(e => e.EventId.Id).ToArray();
        Assert.Contains(160, events);
        Assert.Equal(2, events.Count(id => id == 162));
        Assert.Contains(163, events);
        Assert.Contains(164, events);
    }

    [Fact]
    public async Task A_refused_renewal_leads_to_new_credentials_and_both_leases_are_revoked_at_stop()
    {
        DynamicCredential();
        _vault.Dynamic("database/creds/orders", ttl: 100);
        _vault.RefuseRenewals(400);
        var proxy = await StartAsync();
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

            _time.Advance(TimeSpan.FromSeconds(85));
            await proxy.GetAsync("api", "/v1/b");
            await WaitUntilAsync(() => _vault.Requests("/v1/database/creds/orders").Count == 2 && proxy.App.State.Cache.GetStatuses().Single().State == "valid");
            Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/c")).Response.StatusCode);

            Assert.Single(_vault.Requests("/v1/sys/leases/renew"));
            Assert.Equal(Basic(_vault.Usernames[1], _vault.Passwords[1]), Upstream("Authorization").Last());
            Assert.Empty(_vault.Requests("/v1/sys/leases/revoke"));
        }
        finally
        {
            await proxy.DisposeAsync();
        }

        // The superseded lease still had 15 s to run: at stop it is revoked with the current one.
        var revoked = _vault.Requests("/v1/sys/leases/revoke").Select(e => FakeVault.BodyOf(e).GetProperty("lease_id").GetString()).Order().ToArray();
        Assert.Equal(_vault.LeaseIds.Order().ToArray(), revoked);
    }

    [Fact]
    public async Task A_lease_is_never_used_past_the_vault_token_that_issued_it()
    {
        // Vault revokes a token's leases when the token expires: a 600 s lease from a 300 s token ends at 300 s.
        _vault.Login(ttl: 300);
        DynamicCredential();
        _vault.Dynamic("database/creds/orders", ttl: 600);
        _vault.Renewals(600);
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);
        var expiresAt = proxy.App.State.Cache.GetStatuses().Single().ExpiresAt!.Value;
        Assert.InRange((expiresAt - _time.GetUtcNow()).TotalSeconds, 299, 300);

        // At 80% of 300 s: renewing cannot help (the token ends first), so a new login issues a new lease.
        _time.Advance(TimeSpan.FromSeconds(245));
        await proxy.GetAsync("api", "/v1/b");
        await WaitUntilAsync(() => _vault.Requests("/v1/database/creds/orders").Count == 2 && proxy.App.State.Cache.GetStatuses().Single().State == "valid");
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/c")).Response.StatusCode);

        Assert.Equal(2, _vault.Logins().Count);
        Assert.Equal(_vault.ClientTokens[1], FakeVault.TokenOf(_vault.Requests("/v1/database/creds/orders")[1]));
        Assert.Equal(Basic(_vault.Usernames[1], _vault.Passwords[1]), Upstream("Authorization").Last());
    }

    [Fact]
    public async Task An_admin_revoke_revokes_the_lease_at_vault_and_the_next_request_gets_a_new_user()
    {
        DynamicCredential();
        _vault.Dynamic("database/creds/orders", ttl: 600);
        _vault.Renewals(600);
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/credentials/vault/revoke")).StatusCode);
        await WaitUntilAsync(() => _vault.Requests("/v1/sys/leases/revoke").Count == 1);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/b")).Response.StatusCode);

        // Revoked at Vault, never renewed: a new lease, a new user.
        Assert.Equal(_vault.LeaseIds[0], FakeVault.BodyOf(Assert.Single(_vault.Requests("/v1/sys/leases/revoke"))).GetProperty("lease_id").GetString());
        Assert.Empty(_vault.Requests("/v1/sys/leases/renew"));
        Assert.Equal(2, _vault.Requests("/v1/database/creds/orders").Count);
        Assert.Equal([Basic(_vault.Usernames[0], _vault.Passwords[0]), Basic(_vault.Usernames[1], _vault.Passwords[1])], Upstream("Authorization"));
    }

    [Fact]
    public async Task Dynamic_lease_is_revoked_when_the_proxy_is_disposed()
    {
        DynamicCredential();
        _vault.Dynamic("database/creds/orders", ttl: 600);
        var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);
        Assert.Empty(_vault.Requests("/v1/sys/leases/revoke"));

        await proxy.DisposeAsync();

        var revoke = Assert.Single(_vault.Requests("/v1/sys/leases/revoke"));
        Assert.Equal("PUT", revoke.RequestMessage.Method);
        Assert.Equal(_vault.LeaseIds.Single(), FakeVault.BodyOf(revoke).GetProperty("lease_id").GetString());
        Assert.Equal(_vault.ClientTokens.Single(), FakeVault.TokenOf(revoke));
    }

    [Fact]
    public async Task Dynamic_lease_is_revoked_when_a_reload_drops_the_credential()
    {
        DynamicCredential();
        _vault.Dynamic("database/creds/orders", ttl: 600);
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

        // The credential is replaced by a file credential: the Vault one is dropped.
        var fileKey = "file-key-" + Guid.NewGuid().ToString("N");
        proxy.NeverEmit(fileKey);
        _config.Credential("vault", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("file-key", fileKey) })
            .Policy("api", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "vault", "X-Api-Key", "{token}"));
        File.Move(_config.Write("proxy.json.tmp"), _configPath!, overwrite: true);
        Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/reload")).StatusCode);

        await WaitUntilAsync(() => _vault.Requests("/v1/sys/leases/revoke").Count == 1);
        var revoke = Assert.Single(_vault.Requests("/v1/sys/leases/revoke"));
        Assert.Equal(_vault.LeaseIds.Single(), FakeVault.BodyOf(revoke).GetProperty("lease_id").GetString());
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/b")).Response.StatusCode);
        Assert.Equal(fileKey, _upstream.LogEntries.Last().RequestMessage.Headers!.First(h => h.Key.Equals("X-Api-Key", StringComparison.OrdinalIgnoreCase)).Value.Single());
    }

    [Fact]
    public async Task Sealed_vault_gives_503_without_its_text_and_no_upstream_call()
    {
        KvCredential(c => c["RetryAttempts"] = 1);
        var marker = "sealed-" + Guid.NewGuid().ToString("N");
        _vault.FailEverything(503, "Vault is sealed " + marker);
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/v1/orders");

        var detail = Problem(response, body).GetProperty("detail").GetString()!;
        Assert.Contains("sealed or unavailable (503)", detail);
        Assert.DoesNotContain(marker, body, StringComparison.Ordinal);
        Assert.DoesNotContain("Vault is sealed", detail, StringComparison.Ordinal);
        Assert.Empty(_upstream.LogEntries);
        // Transient: retried within the fetch.
        Assert.Equal(2, _vault.Logins().Count);
        Assert.DoesNotContain(proxy.Logs.Entries, e => e.AllText().Contains(marker, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Https_vault_is_trusted_through_CaFile_and_refused_without_it()
    {
        using var pki = new TestPki(_config.Directory);
        using var tlsVault = new FakeVault(pki.IssueServer());
        tlsVault.Login();
        tlsVault.Kv("secret", "payments/api", new JsonObject { ["api-key"] = _kvValue });
        KvCredential(c =>
        {
            c["Address"] = tlsVault.Address;
            c["CaFile"] = pki.CaFile;
            c["RetryAttempts"] = 0;
        });
        _config.Credential("untrusted", new JsonObject
        {
            ["Source"] = "Vault", ["Address"] = tlsVault.Address, ["AuthMethod"] = "Jwt", ["Role"] = "orders",
            ["SecretPath"] = "secret/payments/api", ["Field"] = "api-key", ["RetryAttempts"] = 0, ["AllowLoopbackSquatting"] = true,
        }).Policy("untrusted", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v2/"), "untrusted", "X-Api-Key", "{token}"));
        await using var proxy = await StartAsync();
        proxy.NeverEmit(tlsVault.Secrets);

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/orders")).Response.StatusCode);
        var (response, body) = await proxy.GetAsync("api", "/v2/orders");

        Assert.StartsWith("https://", tlsVault.Address, StringComparison.Ordinal);
        Assert.Equal([_kvValue], Upstream("X-Api-Key"));
        Assert.Contains("TLS handshake failed", Problem(response, body).GetProperty("detail").GetString());
        Assert.Single(tlsVault.Logins());
    }

    [Fact]
    public async Task Vault_down_gives_503_and_no_upstream_call()
    {
        KvCredential(c => c["RetryAttempts"] = 0);
        _vault.Server.Stop();
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/v1/orders");

        Assert.Contains("unreachable", Problem(response, body).GetProperty("detail").GetString());
        Assert.Empty(_upstream.LogEntries);
    }

    [Theory]
    [InlineData("/v1/auth/jwt/login", 400, "logging in with auth/jwt role orders: rejected (400); unknown role")]
    [InlineData("/v1/auth/jwt/login", 403, "logging in with auth/jwt role orders: permission denied (403)")]
    [InlineData("/v1/secret/data/payments/api", 403, "reading secret/payments/api: permission denied (403)")]
    [InlineData("/v1/secret/data/payments/api", 404, "reading secret/payments/api: not found (404); no such KV v2 secret")]
    public async Task Vault_errors_are_mapped_to_safe_reasons_without_echoing_the_body(string path, int status, string reason)
    {
        KvCredential();
        _vault.Kv("secret", "payments/api", new JsonObject { ["api-key"] = _kvValue });
        // Vault's messages can repeat input: here the workload token itself.
        _vault.Fail(path, status, "error validating token: " + _workloadToken);
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/v1/orders");

        Assert.Contains(reason, Problem(response, body).GetProperty("detail").GetString());
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task A_403_with_the_cached_token_logs_in_again_and_retries_once()
    {
        KvCredential(c => c["DefaultLifetime"] = "00:01:00");
        _vault.Kv("secret", "payments/api", new JsonObject { ["api-key"] = _kvValue });
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

        // The token is revoked in Vault (or expired early): Vault answers 403 permission denied.
        _vault.DenyToken(_vault.ClientTokens[0]);
        _time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/b")).Response.StatusCode);

        Assert.Equal(2, _vault.Logins().Count);
        var reads = _vault.Requests("/v1/secret/data/payments/api");
        Assert.Equal([_vault.ClientTokens[0], _vault.ClientTokens[0], _vault.ClientTokens[1]], reads.Select(e => FakeVault.TokenOf(e)!).ToArray());
    }

    [Fact]
    public async Task Vault_token_near_its_end_is_replaced_by_a_new_login()
    {
        _vault.Login(ttl: 120);
        KvCredential(c => c["DefaultLifetime"] = "00:01:00");
        _vault.Kv("secret", "payments/api", new JsonObject { ["api-key"] = _kvValue });
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);

        _time.Advance(TimeSpan.FromSeconds(115));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/b")).Response.StatusCode);

        Assert.Equal(2, _vault.Logins().Count);
        Assert.Equal(_vault.ClientTokens[1], FakeVault.TokenOf(_vault.Requests("/v1/secret/data/payments/api").Last()));
    }

    [Fact]
    public async Task Workload_identity_missing_gives_503_and_nothing_is_sent_to_vault()
    {
        KvCredential();
        File.Delete(Path.Combine(_config.Directory, "workload-token"));
        await using var proxy = await StartAsync();

        var (response, _) = await proxy.GetAsync("api", "/v1/orders");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Empty(_vault.Server.LogEntries);
        Assert.Empty(_upstream.LogEntries);
    }

    public static TheoryData<string, string, string> ConfigErrors => new()
    {
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"DynamicPath\":\"database/creds/orders\"}", ":DynamicPath", "not both" },
        { "{}", string.Empty, "give SecretPath with Field" },
        { "{\"Field\":\"f\",\"DynamicPath\":\"database/creds/orders\"}", ":Field", "applies to SecretPath only" },
        { "{\"Field\":\"f\"}", ":Field", "applies with SecretPath only" },
        { "{\"SecretPath\":\"secret/a\"}", ":Field", "is required with SecretPath" },
        { "{\"SecretPath\":\"secret\",\"Field\":\"f\"}", ":SecretPath", "is not a KV v2 path" },
        { "{\"SecretPath\":\"secret/../sys\",\"Field\":\"f\"}", ":SecretPath", "is not a KV v2 path" },
        { "{\"DynamicPath\":\"database/creds/orders\",\"Username\":\"app\"}", ":Username", "the lease gives the user name" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"AuthMethod\":\"Token\"}", ":AuthMethod", "'Token' is not a Vault auth method" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"AuthMethod\":null}", ":AuthMethod", "is required (Jwt or Kubernetes)" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"Role\":null}", ":Role", "is required" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"Address\":null}", ":Address", "is required" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"Address\":\"ftp://vault:8200\"}", ":Address", "is not an absolute http or https URL" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"AuthMount\":\"/jwt/\"}", ":AuthMount", "is not a Vault mount path" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"CaFile\":\"no-such-ca.pem\"}", ":CaFile", "does not exist" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"RetryAttempts\":11}", ":RetryAttempts", "between 0 and 10" },
        { "{\"SecretPath\":\"secret/a\",\"Field\":\"f\",\"DefaultLifetime\":\"00:00:00\"}", ":DefaultLifetime", "positive" },
    };

    [Theory]
    [MemberData(nameof(ConfigErrors))]
    public async Task Config_errors_name_the_key(string change, string keySuffix, string message)
    {
        var definition = new JsonObject { ["Source"] = "Vault", ["Address"] = "https://vault.internal:8200", ["AuthMethod"] = "Jwt", ["Role"] = "orders" };
        foreach (var (name, value) in JsonNode.Parse(change)!.AsObject())
        {
            definition[name] = value?.DeepClone();
        }

        var errors = await CompileAsync(definition, withIdentity: true);

        Assert.Contains(errors, e => e.Key == Root + keySuffix && e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Vault_without_a_workload_identity_is_a_config_error()
    {
        var errors = await CompileAsync(new JsonObject
        {
            ["Source"] = "Vault", ["Address"] = "https://vault.internal:8200", ["AuthMethod"] = "Kubernetes", ["Role"] = "orders",
            ["SecretPath"] = "secret/a", ["Field"] = "f",
        }, withIdentity: false);

        var error = Assert.Single(errors);
        Assert.Equal(Root + ":AuthMethod", error.Key);
        Assert.Contains("needs the workload identity: configure SecretlessProxy:Identity", error.Message);
    }

    [Fact]
    public async Task Address_with_user_info_is_rejected_without_echoing_the_password()
    {
        var password = "pw-" + Guid.NewGuid().ToString("N");
        var errors = await CompileAsync(new JsonObject
        {
            ["Source"] = "Vault", ["Address"] = "https://root:" + password + "@vault.internal:8200", ["AuthMethod"] = "Jwt", ["Role"] = "orders",
            ["SecretPath"] = "secret/a", ["Field"] = "f",
        }, withIdentity: true);

        var error = Assert.Single(errors);
        Assert.Equal(Root + ":Address", error.Key);
        Assert.DoesNotContain(password, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Valid_kv_and_dynamic_definitions_compile()
    {
        using var pki = new TestPki(_config.Directory);
        var ca = pki.CaFile;
        Assert.Empty(await CompileAsync(new JsonObject
        {
            ["Source"] = "Vault", ["Address"] = "https://vault.internal:8200", ["AuthMethod"] = "Kubernetes", ["Role"] = "orders",
            ["SecretPath"] = "secret/payments/api", ["Field"] = "api-key", ["CaFile"] = ca, ["Username"] = "svc",
        }, withIdentity: true));
        Assert.Empty(await CompileAsync(new JsonObject
        {
            ["Source"] = "Vault", ["Address"] = "http://127.0.0.1:8200", ["AuthMethod"] = "Jwt", ["AuthMount"] = "jwt-ci", ["Role"] = "orders", ["AllowLoopbackSquatting"] = true,
            ["DynamicPath"] = "database/creds/orders",
        }, withIdentity: true));
    }

    private async Task<IReadOnlyList<ConfigError>> CompileAsync(JsonObject definition, bool withIdentity)
    {
        using var config = new TestConfig();
        if (withIdentity)
        {
            config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = config.SecretFile("token", _workloadToken) });
        }

        config.RouteListener("api", "http://127.0.0.1:9000")
            .Credential("vault", definition)
            .Policy("api", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"]), "vault", "X-Api-Key", "{token}"));
        if (definition["CaFile"] is JsonValue ca && !Path.IsPathRooted(ca.GetValue<string>()))
        {
            definition["CaFile"] = Path.Combine(config.Directory, ca.GetValue<string>());
        }

        using var http = new HttpMessageInvoker(new SocketsHttpHandler());
        var result = await new ConfigLoader(TimeProvider.System, http).LoadAsync(config.Write(), includeEnvironment: false);
        return result.Errors;
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        // Bounded poll for background work (refreshes and releases run on the thread pool); not a timing assertion.
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(condition(), "condition not reached within 5 s");
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _vault.Dispose();
        _config.Dispose();
    }
}
