using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Admin;

/// <summary>
/// Who can reach what on the admin endpoints: reload and revoke need the admin token (or, on a Unix
/// socket, an allowed peer uid) and are refused when neither is configured; /quitquitquit stays
/// open to local callers; the probe endpoint serves probes and metrics and nothing else.
/// </summary>
public sealed class AdminAccessTests : IDisposable
{
    private const string Revoke = "/credentials/key/revoke";

    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "admin-access-key-" + Guid.NewGuid().ToString("N");

    public AdminAccessTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "key"));
    }

    [Fact]
    public async Task Revoke_and_reload_without_a_token_are_401_problem_json_and_change_nothing()
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key, _config.AdminToken);
        await CacheTheCredentialAsync(proxy);

        foreach (var path in new[] { Revoke, "/reload" })
        {
            var (response, problem) = await PostAsync(proxy.App.AdminUri, path, authorization: null);

            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("urn:secretless-proxy:problem:admin-token-required", problem.GetProperty("type").GetString());
            Assert.Contains("SecretlessProxy:Admin:TokenFile", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.Equal("Bearer realm=\"secretless-proxy-admin\"", response.Headers.WwwAuthenticate.ToString());
        }

        Assert.Equal("valid", await CredentialStateAsync(proxy));
    }

    [Theory]
    [InlineData("Bearer wrong-token")]
    [InlineData("Basic YWRtaW46YWRtaW4=")]
    [InlineData("Bearer ")]
    public async Task Revoke_with_a_wrong_token_is_refused_and_the_credential_stays_cached(string authorization)
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key, _config.AdminToken);
        await CacheTheCredentialAsync(proxy);

        var (response, problem) = await PostAsync(proxy.App.AdminUri, Revoke, authorization);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(401, problem.GetProperty("status").GetInt32());
        Assert.StartsWith("Bearer ", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal("valid", await CredentialStateAsync(proxy));
    }

    [Fact]
    public async Task The_token_from_the_file_revokes_and_reloads_and_neither_token_appears_in_any_log()
    {
        var wrong = "wrong-admin-token-" + Guid.NewGuid().ToString("N");
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key, _config.AdminToken, wrong);
        await CacheTheCredentialAsync(proxy);

        Assert.Equal(HttpStatusCode.Unauthorized, (await PostAsync(proxy.App.AdminUri, Revoke, "Bearer " + wrong)).Response.StatusCode);
        var (revoked, _) = await PostAsync(proxy.App.AdminUri, Revoke, "Bearer " + _config.AdminToken);
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        var (reloaded, _) = await PostAsync(proxy.App.AdminUri, "/reload", "bearer " + _config.AdminToken);

        Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        Assert.Equal("empty", await CredentialStateAsync(proxy));
        Assert.Equal(HttpStatusCode.OK, reloaded.StatusCode);
        Assert.Equal("applied", JsonDocument.Parse(await reloaded.Content.ReadAsStringAsync()).RootElement.GetProperty("outcome").GetString());

        // Each call is logged (so the scan below looks at real lines), by name and reason only.
        var logs = proxy.Logs.Entries;
        Assert.Equal(2, logs.Count(e => e.EventId.Id == 340));
        Assert.Contains(logs, e => e.EventId.Id == 341 && e.Message.Contains("bearer token does not match", StringComparison.Ordinal));
        Assert.All(logs, e => Assert.DoesNotContain(_config.AdminToken, e.AllText(), StringComparison.Ordinal));
        Assert.All(logs, e => Assert.DoesNotContain(wrong, e.AllText(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task Rewriting_the_token_file_rotates_the_token_at_once()
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        var old = _config.AdminToken;
        var rotated = "rotated-admin-token-" + Guid.NewGuid().ToString("N");
        proxy.NeverEmit(_key, old, rotated);

        // As a Secret volume does it: a new file renamed over the old one.
        var temp = _config.AdminTokenFile + ".new";
        await File.WriteAllTextAsync(temp, rotated + "\n");
        File.Move(temp, _config.AdminTokenFile, overwrite: true);

        Assert.Equal(HttpStatusCode.Unauthorized, (await PostAsync(proxy.App.AdminUri, Revoke, "Bearer " + old)).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(proxy.App.AdminUri, Revoke, "Bearer " + rotated)).Response.StatusCode);
    }

    [Fact]
    public async Task With_no_token_file_and_no_allowed_uids_state_changes_are_refused_but_quitquitquit_still_stops_the_proxy()
    {
        _config.Section["Admin"]!.AsObject().Remove("TokenFile");
        var proxy = await ProxyHarness.StartAsync(_config.Write());
        await using var _ = proxy;
        await CacheTheCredentialAsync(proxy);

        foreach (var path in new[] { Revoke, "/reload", "/anything-else" })
        {
            // Even a bearer token: there is none to compare it with.
            var (response, problem) = await PostAsync(proxy.App.AdminUri, path, "Bearer " + _config.AdminToken);

            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("urn:secretless-proxy:problem:admin-changes-disabled", problem.GetProperty("type").GetString());
            var detail = problem.GetProperty("detail").GetString()!;
            Assert.Contains("SecretlessProxy:Admin:TokenFile", detail, StringComparison.Ordinal);
            Assert.Contains("SecretlessProxy:Admin:AllowedUids", detail, StringComparison.Ordinal);
        }

        Assert.Equal("valid", await CredentialStateAsync(proxy));
        Assert.False(proxy.App.Stopping.IsCancellationRequested);

        // A Job's app needs no token to end its sidecar.
        var (quit, _) = await PostAsync(proxy.App.AdminUri, "/quitquitquit", authorization: null);
        Assert.Equal(HttpStatusCode.OK, quit.StatusCode);
        await proxy.App.WaitForShutdownAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(proxy.App.Stopping.IsCancellationRequested);
    }

    [Fact]
    public async Task The_probe_endpoint_serves_probes_and_metrics_and_404s_everything_else()
    {
        _config.Section["Admin"]!["ProbeUrl"] = "http://127.0.0.1:0";
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key, _config.AdminToken);
        await CacheTheCredentialAsync(proxy);
        var probes = proxy.App.ProbeUri!;
        Assert.NotEqual(proxy.App.AdminEndPoint.Port, proxy.App.ProbeEndPoint!.Port);
        using var client = new HttpClient();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri(probes, "/healthz"))).StatusCode);
        var ready = await client.GetAsync(new Uri(probes, "/readyz"));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("ready", JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());
        var metrics = await client.GetAsync(new Uri(probes, "/metrics"));
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.Contains("secretless_proxy_requests_total{", await metrics.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        foreach (var path in new[] { "/decisions", "/decisions?limit=5", "/credentials" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri(probes, path))).StatusCode);
        }

        // Not even with the admin token, and /quitquitquit does not stop anything from here.
        foreach (var path in new[] { Revoke, "/reload", "/quitquitquit" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await PostAsync(probes, path, "Bearer " + _config.AdminToken)).Response.StatusCode);
        }

        Assert.Equal("valid", await CredentialStateAsync(proxy));
        Assert.False(proxy.App.Stopping.IsCancellationRequested);
        // The admin endpoint still serves what the probe endpoint does not.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri(proxy.App.AdminUri, "/decisions"))).StatusCode);
    }

    [Fact]
    public async Task On_a_unix_socket_an_allowed_peer_uid_reloads_and_revokes_without_a_token()
    {
        var socket = Path.Combine(_config.Directory, "admin.sock");
        _config.Section["Admin"] = new JsonObject { ["Url"] = "unix:" + socket, ["AllowedUids"] = new JsonArray(OwnUid()) };
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        await CacheTheCredentialAsync(proxy);
        using var client = UnixSocketClient(socket);

        Assert.Equal(new UnixDomainSocketEndPoint(socket).ToString(), proxy.App.AdminBinding.ToString());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/decisions")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync(Revoke, null)).StatusCode);
        Assert.Equal("empty", JsonDocument.Parse(await client.GetStringAsync("/credentials")).RootElement.GetProperty("credentials")[0].GetProperty("state").GetString());
        var reload = await client.PostAsync("/reload", null);
        Assert.Equal(HttpStatusCode.OK, reload.StatusCode);
        Assert.Equal("applied", JsonDocument.Parse(await reload.Content.ReadAsStringAsync()).RootElement.GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task On_a_unix_socket_a_peer_uid_not_in_the_list_is_403_and_changes_nothing()
    {
        var socket = Path.Combine(_config.Directory, "admin.sock");
        _config.Section["Admin"] = new JsonObject { ["Url"] = "unix:" + socket, ["AllowedUids"] = new JsonArray(OwnUid() + 1) };
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        await CacheTheCredentialAsync(proxy);
        using var client = UnixSocketClient(socket);

        var response = await client.PostAsync(Revoke, null);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("urn:secretless-proxy:problem:admin-peer-not-allowed", problem.GetProperty("type").GetString());
        Assert.Contains("peer uid is " + OwnUid(), problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("valid", JsonDocument.Parse(await client.GetStringAsync("/credentials")).RootElement.GetProperty("credentials")[0].GetProperty("state").GetString());
    }

    private static async Task CacheTheCredentialAsync(ProxyHarness proxy)
    {
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/a")).Response.StatusCode);
        if (proxy.App.AdminBinding is IPEndPoint)
        {
            Assert.Equal("valid", await CredentialStateAsync(proxy));
        }
    }

    private static async Task<string?> CredentialStateAsync(ProxyHarness proxy)
    {
        using var client = new HttpClient();
        var json = await client.GetStringAsync(new Uri(proxy.App.AdminUri, "/credentials"));
        return JsonDocument.Parse(json).RootElement.GetProperty("credentials")[0].GetProperty("state").GetString();
    }

    private static async Task<(HttpResponseMessage Response, JsonElement Problem)> PostAsync(Uri endpoint, string path, string? authorization)
    {
        using var client = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint, path));
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        var problem = response.Content.Headers.ContentType?.MediaType == "application/problem+json" ? JsonDocument.Parse(body).RootElement.Clone() : default;
        return (response, problem);
    }

    private static HttpClient UnixSocketClient(string socketPath) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    { BaseAddress = new Uri("http://admin.local/") };

    /// <summary>This process's real uid, as the kernel reports it for the socket's peer.</summary>
    private static int OwnUid() =>
        int.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _upstream.Stop();
        _config.Dispose();
    }
}
