using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Xunit;
using SecretlessProxy.Identity.Spiffe;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Identity.Spiffe;

/// <summary>
/// <c>Source: SpiffeX509Svid</c> through the real proxy: a Kestrel upstream that requires a client
/// certificate from the fake agent's CA sees the streamed X.509-SVID, and the rotated one on the
/// next connection; an expired SVID while the agent is away gives 503 with the reason and the
/// upstream is not called; the agent's return restores it.
/// </summary>
public sealed class SpiffeX509SvidTests : IAsyncLifetime
{
    private const string Root = BaselineConfig.Root;

    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly TestPki _pki;
    private FakeWorkloadApi _agent = null!;
    private MutualTlsUpstream _upstream = null!;

    public SpiffeX509SvidTests()
    {
        _pki = new TestPki(_config.Directory);
    }

    public async Task InitializeAsync()
    {
        _agent = new FakeWorkloadApi(_time);
        _upstream = await MutualTlsUpstream.StartAsync(_pki, clientCa: _agent.Ca);
        _config.Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile })
            .RouteListener("mtls", _upstream.Url)
            .Credential("svid", new JsonObject { ["Source"] = "SpiffeX509Svid", ["Socket"] = _agent.Endpoint })
            .Policy("mtls", new JsonObject
            {
                ["Match"] = TestConfig.Match(["localhost"]),
                ["Inject"] = new JsonObject { ["ClientCertificate"] = new JsonObject { ["Credential"] = "svid" } },
            });
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        await _agent.DisposeAsync();
        _pki.Dispose();
        _config.Dispose();
    }

    private async Task<ProxyHarness> StartProxyAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        // Each key's PEM, its base64 lines and its DER in base64: no piece of a private key may be emitted.
        proxy.NeverEmit(() => _agent.IssuedKeys.Concat(_agent.IssuedKeys.SelectMany(k => k.Split('\n').Where(l => l.Length > 20 && !l.StartsWith("-----", StringComparison.Ordinal)))));
        return proxy;
    }

    [Fact]
    public async Task The_upstream_sees_the_svid_and_the_rotated_one_on_the_next_connection()
    {
        await _agent.StartAsync();
        await using var proxy = await StartProxyAsync();
        var first = _agent.CurrentX509Thumbprint;

        var (response, body) = await proxy.GetAsync("mtls", "/orders");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("upstream-ok", body);
        Assert.Equal(first, Assert.Single(_upstream.Thumbprints));
        var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.proxy" && s.GetTagItem("server.port") is int port && port == new Uri(_upstream.Url).Port);
        Assert.Equal("client-certificate", span.GetTagItem("secretless.injection"));
        Assert.Equal("SpiffeX509Svid", span.GetTagItem("secretless.credential.source"));
        Assert.Equal(first, span.GetTagItem("secretless.client_certificate.thumbprint"));

        var rotated = _agent.RotateX509();
        Assert.NotEqual(first, rotated);

        // The upstream closes every connection, so each request is a new handshake: once the
        // stream delivered the rotation, the very next one presents the new SVID, never the old again.
        for (var i = 0; i < 100 && _upstream.Thumbprints.Last() != rotated; i++)
        {
            await Task.Delay(50);
            Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/orders")).Response.StatusCode);
        }

        Assert.Equal(rotated, _upstream.Thumbprints.Last());
        Assert.Equal([first, rotated], _upstream.Thumbprints.Distinct());
        Assert.Equal(rotated, (await proxy.GetAsync("mtls", "/orders")).Response.StatusCode == HttpStatusCode.OK ? _upstream.Thumbprints.Last() : null);
        Assert.Equal(1, _agent.OpenX509Streams);
        Assert.Equal(0, _agent.RefusedCalls);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task An_svid_issued_by_an_intermediate_ca_is_presented_with_its_chain_and_rotated()
    {
        // SPIRE under an intermediate CA: the upstream trusts only the root, so the proxy must send
        // the intermediate with the leaf.
        _agent.IssueUnderIntermediate = true;
        _agent.RotateX509();
        await _agent.StartAsync();
        await using var proxy = await StartProxyAsync();
        var first = _agent.CurrentX509Thumbprint;

        var (response, body) = await proxy.GetAsync("mtls", "/orders");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("upstream-ok", body);
        Assert.Equal(first, Assert.Single(_upstream.Thumbprints));

        // A rotation: the next connections present the new chain, never the old leaf again.
        var rotated = _agent.RotateX509();
        for (var i = 0; i < 100 && _upstream.Thumbprints.Last() != rotated; i++)
        {
            await Task.Delay(50);
            Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/orders")).Response.StatusCode);
        }

        Assert.Equal(rotated, _upstream.Thumbprints.Last());
        Assert.Equal([first, rotated], _upstream.Thumbprints.Distinct());
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task An_expired_svid_while_the_agent_is_away_gives_503_and_the_agents_return_restores_it()
    {
        await _agent.StartAsync();
        _agent.RotateX509(lifetime: TimeSpan.FromMinutes(2));
        await using var proxy = await StartProxyAsync();
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("mtls", "/orders")).Response.StatusCode);

        await _agent.StopAsync();
        _time.Advance(TimeSpan.FromMinutes(3));
        var (expired, body) = await proxy.GetAsync("mtls", "/orders");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, expired.StatusCode);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("urn:secretless-proxy:problem:credential-unavailable", problem.GetProperty("type").GetString());
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains("X.509-SVID for " + _agent.SpiffeId, detail, StringComparison.Ordinal);
        Assert.Contains("not now", detail, StringComparison.Ordinal);
        Assert.Contains("SPIFFE Workload API at " + _agent.Endpoint, detail, StringComparison.Ordinal);
        Assert.Single(_upstream.Thumbprints);

        _agent.RotateX509();
        await _agent.StartAsync();
        HttpStatusCode status = 0;
        for (var i = 0; i < 50 && status != HttpStatusCode.OK; i++)
        {
            _time.Advance(SpiffeJwtIdentity.MaxBackoff);
            await Task.Delay(100);
            status = (await proxy.GetAsync("mtls", "/orders")).Response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(_agent.CurrentX509Thumbprint, _upstream.Thumbprints.Last());
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task A_policy_cannot_send_a_certificate_credential_as_a_value()
    {
        _config.Policy("header", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/x/"), "svid"));

        var result = await CliRunner.ValidateAsync(_config.Write());

        BaselineConfig.AssertProblem(result, Root + ":Policies:header:Inject", "a SpiffeX509Svid credential has no secret value to inject");
    }

    [Fact]
    public async Task A_client_certificate_must_name_a_certificate_credential()
    {
        _config.Credential("file", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("api-key", "k-" + Guid.NewGuid().ToString("N")) })
            .Policy("mtls", new JsonObject
            {
                ["Match"] = TestConfig.Match(["localhost"]),
                ["Inject"] = new JsonObject { ["ClientCertificate"] = new JsonObject { ["Credential"] = "file" } },
            });

        var result = await CliRunner.ValidateAsync(_config.Write());

        BaselineConfig.AssertProblem(result, Root + ":Policies:mtls:Inject:ClientCertificate:Credential", "a File credential yields no certificate");
    }

    [Fact]
    public async Task The_socket_must_be_a_unix_socket()
    {
        _config.Credential("svid", new JsonObject { ["Source"] = "SpiffeX509Svid", ["Socket"] = "tcp://127.0.0.1:8081" });

        var result = await CliRunner.ValidateAsync(_config.Write());

        BaselineConfig.AssertProblem(result, Root + ":Credentials:svid:Socket", "is not a Unix socket");
    }
}
