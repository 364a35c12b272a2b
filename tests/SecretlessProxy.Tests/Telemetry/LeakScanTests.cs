using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Telemetry;

/// <summary>
/// Every functional test scans what the proxy emitted for its secrets when its harness is disposed.
/// These tests show the scan sees what it claims to see, so a passing suite means something.
/// </summary>
public sealed class LeakScanTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "leak-probe-" + Guid.NewGuid().ToString("N");

    public LeakScanTests()
    {
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "key", "X-Api-Key", "{token}"));
    }

    [Fact]
    public async Task Scan_covers_framework_debug_logs_and_spans()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key);
        await proxy.GetAsync("api", "/v1/x");

        Assert.Contains(proxy.Logs.Entries, e => e.Category.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal) && e.Level <= LogLevel.Debug);
        Assert.Contains(proxy.Spans, s => s.OperationName == "secretless.proxy");
        // The outgoing HTTP client span (System.Net.Http) is exported too, with its URL.
        Assert.Contains(proxy.Spans, s => s.Kind == System.Diagnostics.ActivityKind.Client && s.GetTagItem("url.full") is not null);
    }

    [Fact]
    public async Task Scan_fails_when_a_secret_reaches_something_emitted()
    {
        // The scan covers the app's responses: a registered value in a response body must fail it.
        // (Not the injected value echoed back: the proxy masks that, see ResponseMaskingTests.)
        var canary = "response-canary-" + Guid.NewGuid().ToString("N");
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody(canary));
        var proxy = await ProxyHarness.StartAsync(_config.Write());
        try
        {
            var (response, body) = await proxy.GetAsync("api", "/v1/echo");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(canary, body);
            proxy.NeverEmit(canary);

            var failure = await Assert.ThrowsAnyAsync<Exception>(proxy.AssertNoSecretEmittedAsync);
            Assert.Contains("a secret leaked into: response:", failure.Message);
        }
        finally
        {
            await proxy.App.DisposeAsync();
        }
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _config.Dispose();
    }
}
