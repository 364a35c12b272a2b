using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using Xunit;
using SecretlessProxy.Forwarding;
using SecretlessProxy.Injection;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Injection;

/// <summary>
/// <c>Inject:ClientCertificate</c>: a real Kestrel upstream that requires a client certificate from
/// the test CA; the proxy presents the one in the policy's PEM files, and the next new connection
/// after the files rotate presents the new one, without a restart.
/// </summary>
public sealed class ClientCertificateTests : IAsyncLifetime
{
    private const string Root = BaselineConfig.Root;
    private const string PolicyKey = Root + ":Policies:mtls";
    private const string CertificateKey = PolicyKey + ":Inject:ClientCertificate";

    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly TestPki _pki;
    private MutualTlsUpstream _upstream = null!;

    public ClientCertificateTests()
    {
        _pki = new TestPki(_config.Directory);
    }

    public async Task InitializeAsync()
    {
        _upstream = await MutualTlsUpstream.StartAsync(_pki);
        _config.Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile });
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _pki.Dispose();
        _config.Dispose();
    }

    /// <summary>A client certificate in its own folder: (thumbprint, cert path, key path, key PEM text).</summary>
    private (string Thumbprint, string CertFile, string KeyFile, string KeyPem) Issue(string name)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_config.Directory, "issued-" + name)).FullName;
        var (certificate, certFile, keyFile) = _pki.IssueClient(folder, "CN=" + name);
        using (certificate)
        {
            return (certificate.Thumbprint, certFile, keyFile, File.ReadAllText(keyFile));
        }
    }

    private static JsonObject CertificatePolicy(string certFile, string keyFile, string host = "localhost") => new()
    {
        ["Match"] = TestConfig.Match([host]),
        ["Inject"] = new JsonObject { ["ClientCertificate"] = new JsonObject { ["CertFile"] = certFile, ["KeyFile"] = keyFile } },
    };

    private async Task<ProxyHarness> StartAsync(params string[] keyPems)
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        // The whole PEM and each of its base64 lines: no piece of a private key may be emitted.
        proxy.NeverEmit(keyPems.Concat(keyPems.SelectMany(k => k.Split('\n').Where(l => l.Length > 20 && !l.StartsWith("-----", StringComparison.Ordinal)))).ToArray());
        return proxy;
    }

    /// <summary>Moves the next certificate's files over the current ones with rename(2), as spiffe-helper and most writers do.</summary>
    private static void RenameOver(string fromCert, string fromKey, string toCert, string toKey)
    {
        File.Move(fromCert, toCert, overwrite: true);
        File.Move(fromKey, toKey, overwrite: true);
    }

    private static JsonElement Problem(string body) => JsonDocument.Parse(body).RootElement;

    [Fact]
    public async Task Upstream_that_requires_a_client_certificate_accepts_the_proxied_call()
    {
        var a = Issue("client-a");
        // Relative to the config file's folder, like every other file in the configuration.
        _config.RouteListener("mtls", _upstream.Url)
            .Policy("mtls", CertificatePolicy(Path.GetRelativePath(_config.Directory, a.CertFile), Path.GetRelativePath(_config.Directory, a.KeyFile)));
        await using var proxy = await StartAsync(a.KeyPem);

        var (response, body) = await proxy.GetAsync("mtls", "/orders");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("upstream-ok", body);
        Assert.Equal(a.Thumbprint, Assert.Single(_upstream.Thumbprints));
        // Spans are process-wide: other tests' proxies run alongside, so pick this upstream's.
        var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.proxy" && s.GetTagItem("server.port") is int port && port == new Uri(_upstream.Url).Port);
        Assert.Equal("client-certificate", span.GetTagItem("secretless.injection"));
        Assert.Equal("ClientCertificate", span.GetTagItem("secretless.credential.source"));
        Assert.Equal(a.Thumbprint, span.GetTagItem("secretless.client_certificate.thumbprint"));
        Assert.Equal("CN=client-a", span.GetTagItem("secretless.client_certificate.subject"));
    }

    [Fact]
    public async Task After_the_files_are_renamed_over_the_next_connection_presents_the_new_certificate()
    {
        var a = Issue("client-a");
        var b = Issue("client-b");
        var certFile = Path.Combine(_config.Directory, "tls.crt");
        var keyFile = Path.Combine(_config.Directory, "tls.key");
        File.Copy(a.CertFile, certFile);
        File.Copy(a.KeyFile, keyFile);
        _config.RouteListener("mtls", _upstream.Url).Policy("mtls", CertificatePolicy(certFile, keyFile));
        await using var proxy = await StartAsync(a.KeyPem, b.KeyPem);

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/first")).Response.StatusCode);
        RenameOver(b.CertFile, b.KeyFile, certFile, keyFile);
        // The files are looked at no more than once a second.
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/second")).Response.StatusCode);

        Assert.True(proxy.Logs.Entries.Any(e => e.AllText().Contains("Loaded client certificate", StringComparison.Ordinal) && e.AllText().Contains(b.Thumbprint, StringComparison.Ordinal)), string.Join("\n", proxy.Logs.Entries.Select(e => e.AllText())));
        // The upstream closed the first connection (Connection: close): the second is a new handshake.
        Assert.Equal(2, _upstream.Connections.Distinct().Count());
        Assert.Equal([a.Thumbprint, b.Thumbprint], _upstream.Thumbprints.ToArray());
    }

    [Fact]
    public async Task A_kubernetes_data_symlink_swap_is_picked_up_by_the_next_connection()
    {
        var a = Issue("client-a");
        var b = Issue("client-b");
        // The layout of a Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/.
        var volume = Directory.CreateDirectory(Path.Combine(_config.Directory, "secret-volume")).FullName;
        void Version(string name, (string Thumbprint, string CertFile, string KeyFile, string KeyPem) issued)
        {
            var folder = Directory.CreateDirectory(Path.Combine(volume, name)).FullName;
            File.Copy(issued.CertFile, Path.Combine(folder, "tls.crt"));
            File.Copy(issued.KeyFile, Path.Combine(folder, "tls.key"));
        }

        Version("..2026_12_01_a", a);
        Version("..2026_12_01_b", b);
        File.CreateSymbolicLink(Path.Combine(volume, "..data"), "..2026_12_01_a");
        File.CreateSymbolicLink(Path.Combine(volume, "tls.crt"), "..data/tls.crt");
        File.CreateSymbolicLink(Path.Combine(volume, "tls.key"), "..data/tls.key");
        _config.RouteListener("mtls", _upstream.Url).Policy("mtls", CertificatePolicy(Path.Combine(volume, "tls.crt"), Path.Combine(volume, "tls.key")));
        await using var proxy = await StartAsync(a.KeyPem, b.KeyPem);

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/first")).Response.StatusCode);
        // The kubelet's swap: a new link renamed over ..data, both files change in one step.
        File.CreateSymbolicLink(Path.Combine(volume, "..data_tmp"), "..2026_12_01_b");
        await RenameAsync(Path.Combine(volume, "..data_tmp"), Path.Combine(volume, "..data"));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/second")).Response.StatusCode);

        Assert.Equal([a.Thumbprint, b.Thumbprint], _upstream.Thumbprints.ToArray());
    }

    [Fact]
    public async Task Unusable_files_keep_the_valid_certificate_and_an_expired_one_is_never_presented()
    {
        var a = Issue("client-a");
        var certFile = Path.Combine(_config.Directory, "tls.crt");
        var keyFile = Path.Combine(_config.Directory, "tls.key");
        File.Copy(a.CertFile, certFile);
        File.Copy(a.KeyFile, keyFile);
        _config.RouteListener("mtls", _upstream.Url).Policy("mtls", CertificatePolicy(certFile, keyFile));
        await using var proxy = await StartAsync(a.KeyPem);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/first")).Response.StatusCode);

        // A half-written rotation: garbage where the certificate was.
        await File.WriteAllTextAsync(certFile, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/still-valid")).Response.StatusCode);
        Assert.Equal([a.Thumbprint, a.Thumbprint], _upstream.Thumbprints.ToArray());
        Assert.Contains(proxy.Logs.Entries, e => e.AllText().Contains("does not contain a PEM certificate", StringComparison.Ordinal));

        // The test CA's client certificates are valid for seven days.
        _time.Advance(TimeSpan.FromDays(8));
        var (response, body) = await proxy.GetAsync("mtls", "/expired");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var detail = Problem(body).GetProperty("detail").GetString()!;
        Assert.Contains("policy 'mtls' needs the client certificate", detail, StringComparison.Ordinal);
        Assert.Contains("not now", detail, StringComparison.Ordinal);
        Assert.Contains("its replacement could not be loaded: file '" + certFile + "' does not contain a PEM certificate", detail, StringComparison.Ordinal);
        Assert.Equal(2, _upstream.Thumbprints.Count);
    }

    [Fact]
    public async Task A_policy_whose_request_goes_over_plain_http_fails_closed()
    {
        var a = Issue("client-a");
        using var plain = WireMockFactory.Start();
        plain.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        _config.RouteListener("plain", plain.LoopbackUrl()).Policy("mtls", CertificatePolicy(a.CertFile, a.KeyFile, host: "127.0.0.1"));
        await using var proxy = await StartAsync(a.KeyPem);

        var (response, body) = await proxy.GetAsync("plain", "/orders");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var problem = Problem(body);
        Assert.Equal("urn:secretless-proxy:problem:client-certificate-needs-https", problem.GetProperty("type").GetString());
        Assert.Contains("policy 'mtls' presents a TLS client certificate, which needs an https upstream", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty(plain.LogEntries);
    }

    [Fact]
    public async Task An_upstream_that_requires_a_certificate_refuses_a_policy_without_one_as_a_502()
    {
        var apiKey = "api-key-" + Guid.NewGuid().ToString("N");
        _config.RouteListener("mtls", _upstream.Url)
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("api-key", apiKey) })
            .Policy("bearer-only", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"]), "key"));
        await using var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        proxy.NeverEmit(apiKey);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var response = await proxy.Client.GetAsync(proxy.Listener("mtls", "/orders"), timeout.Token);
        var body = await response.Content.ReadAsStringAsync(timeout.Token);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("forwarding to localhost:" + _upstream.Port + " failed", Problem(body).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty(_upstream.Thumbprints);
    }

    [Fact]
    public async Task Config_errors_are_reported_by_key_without_key_material()
    {
        var a = Issue("client-a");
        var b = Issue("client-b");
        var missing = Path.Combine(_config.Directory, "missing.pem");
        var garbage = _config.SecretFile("garbage.pem", "this is not PEM");
        _config.RouteListener("mtls", _upstream.Url)
            .Policy("missing-cert", CertificatePolicy(missing, a.KeyFile, "missing.example"))
            .Policy("missing-key", CertificatePolicy(a.CertFile, missing, "missing-key.example"))
            .Policy("wrong-key", CertificatePolicy(a.CertFile, b.KeyFile, "wrong.example"))
            .Policy("garbage-cert", CertificatePolicy(garbage, a.KeyFile, "garbage.example"))
            .Policy("garbage-key", CertificatePolicy(a.CertFile, garbage, "garbage-key.example"))
            .Policy("no-key", new JsonObject
            {
                ["Match"] = TestConfig.Match(["no-key.example"]),
                ["Inject"] = new JsonObject { ["ClientCertificate"] = new JsonObject { ["CertFile"] = a.CertFile } },
            });
        var withCredential = CertificatePolicy(a.CertFile, a.KeyFile, "with-credential.example");
        withCredential["Credential"] = "anything";
        withCredential["Inject"]!["Header"] = "Authorization";
        _config.Policy("with-credential", withCredential);

        var result = await CliRunner.ValidateAsync(_config.Write());

        var key = (string policy) => Root + ":Policies:" + policy + ":Inject:ClientCertificate";
        BaselineConfig.AssertProblem(result, key("missing-cert") + ":CertFile", "file '" + missing + "' does not exist");
        BaselineConfig.AssertProblem(result, key("missing-key") + ":KeyFile", "file '" + missing + "' does not exist");
        BaselineConfig.AssertProblem(result, key("wrong-key") + ":KeyFile", "the private key in '" + b.KeyFile + "' does not match the certificate in '" + a.CertFile + "'");
        BaselineConfig.AssertProblem(result, key("garbage-cert") + ":CertFile", "file '" + garbage + "' does not contain a PEM certificate");
        BaselineConfig.AssertProblem(result, key("garbage-key") + ":KeyFile", "file '" + garbage + "' does not contain an unencrypted PEM private key");
        BaselineConfig.AssertProblem(result, key("no-key") + ":KeyFile", "is required");
        BaselineConfig.AssertProblem(result, Root + ":Policies:with-credential:Credential", "is not used with Inject:ClientCertificate");
        BaselineConfig.AssertProblem(result, Root + ":Policies:with-credential:Inject", "ClientCertificate is its own kind of injection");
        Assert.True(result.Problems.Count == 8, result.ToString());
        foreach (var line in a.KeyPem.Split('\n').Concat(b.KeyPem.Split('\n')).Where(l => l.Length > 20 && !l.StartsWith("-----", StringComparison.Ordinal)))
        {
            Assert.DoesNotContain(line, result.Output + result.Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_reload_that_drops_the_policy_retires_its_client_after_a_grace_period()
    {
        var a = Issue("client-a");
        var rule = new ClientCertificateInjector(a.CertFile, a.KeyFile);
        using var clients = new ClientCertificateClients(new UpstreamClientFactory(null), _time, NullLoggerFactory.Instance);
        var client = clients.For(rule);
        Assert.True(HostPattern.TryParse("localhost", out var localhost));
        var dropped = new PolicySet([]);
        ProxySnapshot Snapshot(PolicySet policies) => new(new AdminSettings(new IPEndPoint(IPAddress.Loopback, 0), null, null, []), new Dictionary<string, ListenerDefinition>(), [], policies);

        // A reload that keeps the files keeps the client and its pooled connections.
        clients.Retain(Snapshot(new PolicySet([new CompiledPolicy("renamed", [localhost!], null, null, string.Empty, a.CertFile, "ClientCertificate", new ClientCertificateInjector(a.CertFile, a.KeyFile))])));
        Assert.Same(client, clients.For(rule));

        clients.Retain(Snapshot(dropped));
        // Requests of the previous version may still be using it for a while.
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://127.0.0.1:1/");
        _time.Advance(TimeSpan.FromMinutes(3));

        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.Invoker.SendAsync(request, CancellationToken.None));
        Assert.NotSame(client, clients.For(rule));
    }

    private static async Task RenameAsync(string from, string to)
    {
        // rename(2) of a symlink over a symlink, as the kubelet's atomic writer does it.
        using var mv = Process.Start(new ProcessStartInfo("mv", ["-T", from, to]) { RedirectStandardError = true })!;
        await mv.WaitForExitAsync();
        Assert.True(mv.ExitCode == 0, await mv.StandardError.ReadToEndAsync());
    }
}
