using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// Azure workload identity through the real proxy and the real Azure.Identity/MSAL stack: WireMock
/// over TLS (certificate from a test CA the credential trusts through <c>CaFile</c>) stands in for
/// Microsoft Entra at <c>AuthorityHost</c>. The workload token is the federated client assertion;
/// no client secret exists. Managed identity runs the proxy as a child process with App Service's
/// IDENTITY_ENDPOINT/IDENTITY_HEADER pointing at WireMock.
/// </summary>
public sealed class AzureIdentityTests : IDisposable
{
    private const string Tenant = "7a3f0c1e-5b2d-4e8f-9a61-0c2b3d4e5f60";
    private const string ClientId = "0e1d2c3b-4a59-4687-9abc-def012345678";
    private const string Scope = "https://storage.azure.com/.default";
    private const string TokenPath = "/" + Tenant + "/oauth2/v2.0/token";

    private readonly ITestOutputHelper _output;
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly TestPki _pki;
    private readonly WireMockServer _entra;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly ConcurrentQueue<string> _issued = new();
    private readonly string _workloadToken;
    private int _count;

    public AzureIdentityTests(ITestOutputHelper output)
    {
        _output = output;
        _pki = new TestPki(_config.Directory);
        _entra = StartHttps(_pki, _config.Directory);
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        // Anything MSAL asks that the test did not expect is a 404 the assertions below will show.
        _entra.Given(Request.Create().UsingAnyMethod()).AtPriority(100).RespondWith(Response.Create().WithStatusCode(404));
        _workloadToken = WorkloadToken.Write(_config, _time.GetUtcNow());
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Policy("blob", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/container/"), "storage-token"));
        Credential();
    }

    private string AuthorityHost => "https://127.0.0.1:" + _entra.Ports[0] + "/";

    internal static WireMockServer StartHttps(TestPki pki, string directory)
    {
        // Given as a file: WireMock serializes its settings, and an X509Certificate2 with an EC key
        // cannot be serialized (its PrivateKey getter throws).
        using var certificate = pki.IssueServer();
        var pfx = Path.Combine(directory, "entra.pfx");
        File.WriteAllBytes(pfx, certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12, "test"));
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return WireMockServer.Start(new WireMockServerSettings
                {
                    Urls = ["https://127.0.0.1:" + WireMockFactory.FreePort()],
                    UseSSL = true,
                    CertificateSettings = new WireMockCertificateSettings { X509CertificateFilePath = pfx, X509CertificatePassword = "test" },
                });
            }
            catch (Exception) when (attempt < 5)
            {
            }
        }
    }

    private void Credential(Action<JsonObject>? change = null)
    {
        var definition = new JsonObject
        {
            ["Source"] = "AzureWorkloadIdentity",
            ["TenantId"] = Tenant,
            ["ClientId"] = ClientId,
            ["Scopes"] = new JsonArray(Scope),
            ["AuthorityHost"] = AuthorityHost,
            ["AllowLoopbackSquatting"] = true,
            ["CaFile"] = _pki.CaFile,
            ["RetryDelay"] = "00:00:00",
            // Refresh exactly at RefreshAt, as these tests step the clock to it (spreading: RefreshSpreadingTests).
            ["RefreshJitter"] = 0,
            ["SpreadFirstRefresh"] = false,
        };
        change?.Invoke(definition);
        _config.Credential("storage-token", definition);
    }

    /// <summary>Entra's client-credentials answer: a new token per call.</summary>
    private void ServeTokens(int expiresIn) =>
        _entra.Given(Request.Create().WithPath(TokenPath).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json; charset=utf-8").WithBody(_ =>
            {
                var token = "eyJ0eXAiOiJKV1Qi.entra-" + Guid.NewGuid().ToString("N")[..12] + "-" + Interlocked.Increment(ref _count);
                _issued.Enqueue(token);
                return new JsonObject { ["token_type"] = "Bearer", ["expires_in"] = expiresIn, ["ext_expires_in"] = expiresIn, ["access_token"] = token }.ToJsonString();
            }));

    private void RespondError(int status, string body) =>
        _entra.Given(Request.Create().WithPath(TokenPath).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", "application/json; charset=utf-8").WithBody(body));

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_config.Write(), _time);
        harness.NeverEmit(_workloadToken);
        harness.NeverEmit(() => _issued);
        return harness;
    }

    private int TokenRequests => _entra.LogEntries.Count(e => e.RequestMessage.Path == TokenPath);

    private string[] UpstreamAuthorizations() =>
        _upstream.LogEntries.Select(e => e.RequestMessage.Headers!.First(h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase)).Value.Single()).ToArray();

    private void ShowEntraRequests()
    {
        foreach (var entry in _entra.LogEntries)
        {
            _output.WriteLine(entry.RequestMessage.Method + " " + entry.RequestMessage.Path + " -> " + entry.ResponseMessage.StatusCode);
        }
    }

    private static string ProblemDetail(HttpResponseMessage response, string body)
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("urn:secretless-proxy:problem:credential-unavailable", problem.GetProperty("type").GetString());
        return problem.GetProperty("detail").GetString()!;
    }

    [Fact]
    public async Task Workload_token_is_the_client_assertion_and_the_entra_token_reaches_the_upstream()
    {
        ServeTokens(expiresIn: 3599);
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/container/blob.txt");
        ShowEntraRequests();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok", body);
        var token = Assert.Single(_issued);
        Assert.Equal(["Bearer " + token], UpstreamAuthorizations());

        // Only the token endpoint: the authority is configured, so no instance discovery or metadata.
        var request = Assert.Single(_entra.LogEntries).RequestMessage;
        Assert.Equal("POST", request.Method);
        Assert.Equal(TokenPath, request.Path);
        Assert.DoesNotContain(request.Headers!, h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase));
        var form = QueryHelpers.ParseQuery("?" + request.Body).ToDictionary(p => p.Key, p => p.Value.Single()!);
        _output.WriteLine(string.Join(", ", form.Keys));
        Assert.Equal("client_credentials", form["grant_type"]);
        Assert.Equal(ClientId, form["client_id"]);
        Assert.Equal(Scope, form["scope"]);
        Assert.Equal("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", form["client_assertion_type"]);
        Assert.Equal(_workloadToken, form["client_assertion"]);
        Assert.False(form.ContainsKey("client_secret"));
        // MSAL's own extras (client_info asks for the account's ids) carry no credential.
        Assert.Empty(form.Keys.Except(["grant_type", "client_id", "scope", "client_assertion_type", "client_assertion", "client_info"]));
    }

    [Fact]
    public async Task After_expiry_a_new_token_is_fetched_and_sent()
    {
        // Under MSAL's five-minute expiry buffer, so MSAL's cache never answers and each fetch of
        // the proxy reaches the endpoint: the proxy's clock alone decides.
        ServeTokens(expiresIn: 120);
        await using var proxy = await StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/container/a")).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/container/b")).Response.StatusCode);
        Assert.Equal(1, TokenRequests);

        _time.Advance(TimeSpan.FromSeconds(118));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/container/c")).Response.StatusCode);

        Assert.Equal(2, TokenRequests);
        var issued = _issued.ToArray();
        Assert.NotEqual(issued[0], issued[1]);
        Assert.Equal(["Bearer " + issued[0], "Bearer " + issued[0], "Bearer " + issued[1]], UpstreamAuthorizations());
    }

    [Fact]
    public async Task Refresh_ahead_of_a_long_lived_token_is_answered_from_msal_cache_without_a_token_request()
    {
        ServeTokens(expiresIn: 3599);
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/container/a")).Response.StatusCode);

        // Past the proxy's refresh point (80%) on its clock; on the system clock MSAL still holds a
        // token with almost an hour left, so the refresh is a local cache hit: same token, no call.
        _time.Advance(TimeSpan.FromSeconds(3000));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/container/b")).Response.StatusCode);
        await WaitUntilAsync(() => proxy.Spans.Count(s => s.DisplayName == "secretless.credential.fetch") >= 2);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/container/c")).Response.StatusCode);

        Assert.Equal(1, TokenRequests);
        var token = Assert.Single(_issued);
        Assert.All(UpstreamAuthorizations(), a => Assert.Equal("Bearer " + token, a));
    }

    [Fact]
    public async Task An_admin_revoke_gets_a_new_token_instead_of_msals_cached_one()
    {
        ServeTokens(expiresIn: 3599);
        await using var proxy = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/container/a")).Response.StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/credentials/storage-token/revoke")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/container/b")).Response.StatusCode);

        Assert.Equal(2, TokenRequests);
        var tokens = _issued.ToArray();
        Assert.Equal(["Bearer " + tokens[0], "Bearer " + tokens[1]], UpstreamAuthorizations());
    }

    [Fact]
    public async Task An_endless_answer_from_entra_is_cut_at_the_bound_and_gives_503()
    {
        // 2 MiB of JSON: read under the 256 KiB bound, never whole.
        RespondError(200, "{\"access_token\":\"" + new string('a', 2 * 1024 * 1024) + "\",\"expires_in\":3600}");
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/container/a");

        var detail = ProblemDetail(response, body);
        _output.WriteLine(detail);
        Assert.Contains("storage-token", detail);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Entra_error_gives_503_with_the_aadsts_code_and_nothing_of_the_body()
    {
        RespondError(400, new JsonObject
        {
            ["error"] = "invalid_client",
            ["error_description"] = "AADSTS700016: Application with identifier '" + ClientId + "' was not found. Assertion: " + _workloadToken,
            ["error_codes"] = new JsonArray(700016),
            ["trace_id"] = "5f0a",
        }.ToJsonString());
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/container/a");
        ShowEntraRequests();

        var detail = ProblemDetail(response, body);
        _output.WriteLine(detail);
        Assert.Contains("storage-token", detail);
        Assert.Contains("answered 400", detail);
        Assert.Contains("invalid_client", detail);
        Assert.Contains("AADSTS700016", detail);
        Assert.DoesNotContain("was not found", detail);
        Assert.Equal(1, TokenRequests); // not transient: no retry, and no SDK retry either
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Entra_server_errors_are_retried_by_the_proxy_only()
    {
        Credential(c => c["RetryAttempts"] = 2);
        RespondError(503, "{\"error\":\"temporarily_unavailable\"}");
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/container/a");
        ShowEntraRequests();

        var detail = ProblemDetail(response, body);
        _output.WriteLine(detail);
        Assert.Contains("answered 503", detail);
        Assert.Equal(3, TokenRequests);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Entra_unreachable_gives_503()
    {
        Credential(c => c["RetryAttempts"] = 0);
        _entra.Stop();
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/container/a");

        var detail = ProblemDetail(response, body);
        _output.WriteLine(detail);
        Assert.Contains("unreachable", detail);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Slow_entra_past_the_timeout_gives_503()
    {
        Credential(c =>
        {
            c["Timeout"] = "00:00:00.500";
            c["RetryAttempts"] = 0;
        });
        _entra.Given(Request.Create().WithPath(TokenPath).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithDelay(TimeSpan.FromSeconds(5)).WithBody("{}"));
        await using var proxy = await StartAsync();

        var started = DateTime.UtcNow;
        var (response, body) = await proxy.GetAsync("api", "/container/a");

        var detail = ProblemDetail(response, body);
        _output.WriteLine(detail);
        Assert.Contains("did not answer within 0.5 s", detail);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(4), "the configured timeout, not the SDK's, bounds the wait");
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Without_ca_file_the_test_authority_is_not_trusted()
    {
        Credential(c =>
        {
            c.Remove("CaFile");
            c["RetryAttempts"] = 0;
        });
        ServeTokens(expiresIn: 3599);
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/container/a");

        var detail = ProblemDetail(response, body);
        _output.WriteLine(detail);
        Assert.Contains("unreachable (SecureConnectionError)", detail);
        Assert.Equal(0, TokenRequests);
        Assert.Empty(_upstream.LogEntries);
    }

    [Fact]
    public async Task Workload_identity_configuration_errors_are_named_by_key()
    {
        var key = "SecretlessProxy:Credentials:storage-token";
        Credential(c =>
        {
            c.Remove("TenantId");
            c.Remove("ClientId");
            c.Remove("Scopes");
            c["AuthorityHost"] = "http://login.microsoftonline.com/";
            c["ClientSecretFile"] = "secret";
        });

        var errors = await TokenExchangeTests.CompileErrorsAsync(_config);

        Assert.Contains(errors, e => e.Key == key + ":TenantId" && e.Message.Contains("is required"));
        Assert.Contains(errors, e => e.Key == key + ":ClientId" && e.Message.Contains("is required"));
        Assert.Contains(errors, e => e.Key == key + ":Scopes" && e.Message.Contains("is required"));
        Assert.Contains(errors, e => e.Key == key + ":AuthorityHost" && e.Message.Contains("not an https authority host"));
        Assert.Contains(errors, e => e.Key == key + ":ClientSecretFile" && e.Message.Contains("does not apply"));
        Assert.Equal(5, errors.Count);
    }

    [Fact]
    public async Task Workload_identity_without_an_identity_and_managed_identity_with_bad_keys_are_rejected()
    {
        _config.Section.Remove("Identity");
        _config.Credential("mi", new JsonObject
        {
            ["Source"] = "AzureManagedIdentity",
            ["TenantId"] = Tenant,
            ["Scopes"] = new JsonArray(Scope, "https://vault.azure.net/.default"),
        });

        var errors = await TokenExchangeTests.CompileErrorsAsync(_config);

        Assert.Contains(errors, e => e.Key == "SecretlessProxy:Credentials:storage-token:Source" && e.Message.Contains("needs the workload identity: configure SecretlessProxy:Identity"));
        Assert.Contains(errors, e => e.Key == "SecretlessProxy:Credentials:mi:TenantId" && e.Message.Contains("does not apply"));
        Assert.Contains(errors, e => e.Key == "SecretlessProxy:Credentials:mi:Scopes" && e.Message.Contains("exactly one scope"));
    }

    [Theory]
    [InlineData("serves")]
    [InlineData("fails")]
    [InlineData("expires")]
    public async Task Managed_identity_token_from_the_app_service_endpoint_reaches_the_upstream(string scenario)
    {
        // ManagedIdentityCredential reads IDENTITY_ENDPOINT/IDENTITY_HEADER from the process
        // environment, so the proxy runs as a child process with its own.
        using var endpoint = WireMockFactory.Start();
        var header = "identity-header-" + Guid.NewGuid().ToString("N");
        var marker = "eyJ0eXAiOiJKV1Qi.managed-" + Guid.NewGuid().ToString("N");
        var token = marker + "-1";
        var issued = 0;
        // A token that expires within seconds (scenario "expires") makes the proxy fetch again on the real clock.
        var lifetime = scenario == "expires" ? TimeSpan.FromSeconds(4) : TimeSpan.FromHours(1);
        endpoint.Given(Request.Create().WithPath("/msi/token").UsingGet())
            .RespondWith(scenario == "fails"
                ? Response.Create().WithStatusCode(500).WithBody("{\"error\":\"internal\",\"token\":\"" + marker + "\"}")
                : Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithBody(_ => new JsonObject
                {
                    ["access_token"] = marker + "-" + Interlocked.Increment(ref issued),
                    ["expires_on"] = DateTimeOffset.UtcNow.Add(lifetime).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["resource"] = "https://storage.azure.com",
                    ["token_type"] = "Bearer",
                    ["client_id"] = ClientId,
                }.ToJsonString()));

        var config = new TestConfig();
        try
        {
            var listenerPort = WireMockFactory.FreePort();
            var adminPort = WireMockFactory.FreePort();
            config.Set("Admin", new JsonObject { ["Url"] = "http://127.0.0.1:" + adminPort });
            config.RouteListener("api", _upstream.LoopbackUrl());
            config.Section["Listeners"]!["api"]!["Url"] = "http://127.0.0.1:" + listenerPort;
            config.Credential("storage-token", new JsonObject
            {
                ["Source"] = "AzureManagedIdentity",
                ["ClientId"] = ClientId,
                ["Scopes"] = new JsonArray(Scope),
                ["RetryAttempts"] = 0,
            });
            config.Policy("blob", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/container/"), "storage-token"));
            var path = config.Write();

            using var process = ProxyProcess.Start(
                ["run", "--config", path],
                new Dictionary<string, string>
                {
                    ["IDENTITY_ENDPOINT"] = endpoint.LoopbackUrl() + "/msi/token",
                    ["IDENTITY_HEADER"] = header,
                },
                "SecretlessProxy", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "IDENTITY_", "MSI_", "IMDS_", "AZURE_");
            var output = new ConcurrentQueue<string>();
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
                HttpResponseMessage? response = null;
                for (var i = 0; i < 200 && response is null; i++)
                {
                    try
                    {
                        response = await client.GetAsync("http://127.0.0.1:" + listenerPort + "/container/blob.txt");
                    }
                    catch (HttpRequestException) when (!process.HasExited)
                    {
                        await Task.Delay(100);
                    }
                }

                var body = response is null ? "(no response)" : await response.Content.ReadAsStringAsync();
                _output.WriteLine(body);
                if (scenario == "fails")
                {
                    // A failing source: 503 to the app, the upstream never called, nothing of the answer echoed.
                    Assert.Equal(HttpStatusCode.ServiceUnavailable, response?.StatusCode);
                    Assert.Contains("credential-unavailable", body);
                    Assert.DoesNotContain(marker, body);
                    Assert.Empty(_upstream.LogEntries);
                    return;
                }

                Assert.Equal(HttpStatusCode.OK, response?.StatusCode);
                if (scenario == "expires")
                {
                    // Past the first token's expiry a new one is fetched and sent; the expired one never is.
                    await Task.Delay(lifetime + TimeSpan.FromSeconds(1));
                    Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("http://127.0.0.1:" + listenerPort + "/container/blob.txt")).StatusCode);
                    Assert.Equal(2, endpoint.LogEntries.Count());
                    Assert.Equal(["Bearer " + marker + "-1", "Bearer " + marker + "-2"], UpstreamAuthorizations());
                    return;
                }

                var msi = Assert.Single(endpoint.LogEntries).RequestMessage;
                token = marker + "-1";
                _output.WriteLine(msi.Url);
                Assert.Equal(header, msi.Headers!.First(h => h.Key.Equals("X-IDENTITY-HEADER", StringComparison.OrdinalIgnoreCase)).Value.Single());
                Assert.Equal("https://storage.azure.com", msi.Query!["resource"].Single());
                Assert.Equal(ClientId, msi.Query!["client_id"].Single());
                Assert.Equal("Bearer " + token, UpstreamAuthorizations().Single());

                var admin = await client.GetStringAsync("http://127.0.0.1:" + adminPort + "/credentials");
                Assert.Contains("AzureManagedIdentity", admin);
                Assert.DoesNotContain(token, admin);
            }
            finally
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                var emitted = string.Join("\n", output);
                _output.WriteLine(emitted);
                Assert.DoesNotContain(marker, emitted);
                Assert.DoesNotContain(header, emitted);
            }
        }
        finally
        {
            config.Dispose();
        }
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
        _entra.Dispose();
        _pki.Dispose();
        _config.Dispose();
    }
}
