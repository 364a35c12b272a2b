using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Xunit;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Identity.Spiffe;

/// <summary>
/// <c>Upstreams:SpiffeTrust</c> through the real proxy: a Kestrel upstream whose certificate is an
/// X.509-SVID (URI SAN, no DNS name) from the fake agent's CA is accepted when its SPIFFE ID is
/// allowed (exactly or by prefix) and refused otherwise, also when its certificate would pass a DNS
/// name check; no bundle means 503 with the reason. The upstream requires the proxy's own SVID
/// (mutual TLS in both directions, as between SPIFFE workloads).
/// </summary>
public sealed class SpiffeUpstreamTrustTests : IAsyncLifetime
{
    private const string LedgerId = FakeWorkloadApi.TrustDomainId + "/ns/ledger/sa/api";

    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly TestPki _pki;
    private FakeWorkloadApi _agent = null!;
    private MutualTlsUpstream? _upstream;

    public SpiffeUpstreamTrustTests()
    {
        _pki = new TestPki(_config.Directory);
    }

    public Task InitializeAsync()
    {
        _agent = new FakeWorkloadApi(_time);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_upstream is not null)
        {
            await _upstream.DisposeAsync();
        }

        await _agent.DisposeAsync();
        _pki.Dispose();
        _config.Dispose();
    }

    /// <summary>An upstream presenting <paramref name="serverCertificate"/> (default: an SVID for the ledger), and the proxy's config for it.</summary>
    private async Task ConfigureAsync(JsonObject trust, System.Security.Cryptography.X509Certificates.X509Certificate2? serverCertificate = null)
    {
        _upstream = await MutualTlsUpstream.StartAsync(_pki, clientCa: _agent.Ca, serverCertificate: serverCertificate ?? _agent.IssueServer(LedgerId));
        trust["Hosts"] = new JsonArray("localhost");
        trust["Socket"] = _agent.Endpoint;
        _config.Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile, ["SpiffeTrust"] = new JsonObject { ["ledger"] = trust } })
            .RouteListener("ledger", _upstream.Url)
            .Credential("svid", new JsonObject { ["Source"] = "SpiffeX509Svid", ["Socket"] = _agent.Endpoint })
            .Policy("ledger", new JsonObject
            {
                ["Match"] = TestConfig.Match(["localhost"]),
                ["Inject"] = new JsonObject { ["ClientCertificate"] = new JsonObject { ["Credential"] = "svid" } },
            });
    }

    private async Task<ProxyHarness> StartProxyAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        proxy.NeverEmit(() => _agent.IssuedKeys);
        return proxy;
    }

    [Theory]
    [InlineData("SpiffeIds", LedgerId)]
    [InlineData("SpiffeIdPrefixes", FakeWorkloadApi.TrustDomainId + "/ns/ledger")]
    [InlineData("SpiffeIdPrefixes", FakeWorkloadApi.TrustDomainId + "/ns/ledger/")]
    public async Task An_upstream_with_an_allowed_spiffe_id_is_accepted(string key, string allowed)
    {
        await _agent.StartAsync();
        await ConfigureAsync(new JsonObject { [key] = new JsonArray(allowed) });
        await using var proxy = await StartProxyAsync();

        var (response, body) = await proxy.GetAsync("ledger", "/entries");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("upstream-ok", body);
        Assert.Equal(_agent.CurrentX509Thumbprint, Assert.Single(_upstream!.Thumbprints));
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Theory]
    [InlineData("SpiffeIds", FakeWorkloadApi.TrustDomainId + "/ns/ledger/sa/other")]
    [InlineData("SpiffeIdPrefixes", FakeWorkloadApi.TrustDomainId + "/ns/led")]
    [InlineData("SpiffeIdPrefixes", "spiffe://other.org/ns/ledger")]
    public async Task An_upstream_with_another_spiffe_id_is_refused(string key, string allowed)
    {
        await _agent.StartAsync();
        await ConfigureAsync(new JsonObject { [key] = new JsonArray(allowed) });
        await using var proxy = await StartProxyAsync();

        var (response, _) = await proxy.GetAsync("ledger", "/entries");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Empty(_upstream!.Thumbprints);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task A_certificate_that_passes_the_dns_name_check_is_still_refused()
    {
        // localhost, from a CA the proxy trusts (TrustedCaFile), but not an SVID of the trust domain.
        await _agent.StartAsync();
        await ConfigureAsync(new JsonObject { ["SpiffeIds"] = new JsonArray(LedgerId) }, _pki.IssueServer());
        await using var proxy = await StartProxyAsync();

        var (response, _) = await proxy.GetAsync("ledger", "/entries");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Empty(_upstream!.Thumbprints);
    }

    [Fact]
    public async Task An_upstream_whose_certificate_is_a_ca_is_refused_even_with_an_allowed_spiffe_id()
    {
        // X509-SVID profile section 4.1: a leaf has cA=false and no keyCertSign/cRLSign.
        await _agent.StartAsync();
        await ConfigureAsync(new JsonObject { ["SpiffeIds"] = new JsonArray(LedgerId) }, _agent.IssueServer(LedgerId, asCa: true));
        await using var proxy = await StartProxyAsync();

        var (response, _) = await proxy.GetAsync("ledger", "/entries");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Empty(_upstream!.Thumbprints);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task No_agent_means_503_with_the_reason_and_the_upstream_is_not_called()
    {
        await ConfigureAsync(new JsonObject { ["SpiffeIds"] = new JsonArray(LedgerId) });
        await using var proxy = await StartProxyAsync();

        var (response, body) = await proxy.GetAsync("ledger", "/entries");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("urn:secretless-proxy:problem:upstream-trust-unavailable", problem.GetProperty("type").GetString());
        Assert.Contains("SPIFFE Workload API at " + _agent.Endpoint + " is unavailable", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty(_upstream!.Thumbprints);
    }

    [Fact]
    public async Task An_entry_needs_allowed_ids()
    {
        await ConfigureAsync(new JsonObject());

        var result = await CliRunner.ValidateAsync(_config.Write());

        BaselineConfig.AssertProblem(result, BaselineConfig.Root + ":Upstreams:SpiffeTrust:ledger", "give SpiffeIds or SpiffeIdPrefixes");
    }
}
