using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Telemetry;

/// <summary>
/// The exporter is chosen by the standard OTEL_* variables, as operators set them. The proxy runs
/// as a child process (its environment alone carries the variables) and exports OTLP/HTTP protobuf
/// to a recording receiver; the test reads the attribute names and values out of the payload.
/// </summary>
public sealed class OtlpExportTests : IDisposable
{
    private readonly WireMockServer _collector = WireMockFactory.Start();
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "otlp-key-" + Guid.NewGuid().ToString("N");

    public OtlpExportTests()
    {
        _collector.Given(Request.Create().UsingPost()).RespondWith(Response.Create().WithStatusCode(200));
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
    }

    [Fact]
    public async Task Spans_metrics_and_audit_records_reach_an_otlp_http_receiver_named_by_the_environment()
    {
        var listenerPort = WireMockFactory.FreePort();
        var adminPort = WireMockFactory.FreePort();
        _config.Set("Admin", new JsonObject { ["Url"] = "http://127.0.0.1:" + adminPort });
        _config.Section["Listeners"]!["otlp-api"] = new JsonObject { ["Mode"] = "Route", ["Url"] = "http://127.0.0.1:" + listenerPort, ["Upstream"] = _upstream.LoopbackUrl() };
        _config.Credential("otlp-key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) })
            .Policy("otlp-policy", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "otlp-key", "X-Api-Key", "{token}"));

        using var proxy = StartChild(_config.Write(), new()
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = _collector.LoopbackUrl(),
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_SERVICE_NAME"] = "otlp-test-proxy",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "200",
            ["OTEL_BLRP_SCHEDULE_DELAY"] = "100",
        });
        try
        {
            using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, ActivityHeadersPropagator = null });
            await WaitUntilAsync(async () => (await TryGetAsync(client, "http://127.0.0.1:" + adminPort + "/readyz")) == 200);
            var response = await client.GetAsync("http://127.0.0.1:" + listenerPort + "/v1/orders");
            Assert.Equal(200, (int)response.StatusCode);
            // Denied, so the proxy also writes an Information log line ("Denied GET ...") that must not go out as OTLP.
            Assert.Equal(403, (int)(await client.GetAsync("http://127.0.0.1:" + listenerPort + "/v2/other")).StatusCode);

            await WaitUntilAsync(() => Task.FromResult(Payload("/v1/traces").Contains("secretless.proxy", StringComparison.Ordinal)));
            await WaitUntilAsync(() => Task.FromResult(Payload("/v1/metrics").Contains("secretless.proxy.requests", StringComparison.Ordinal)));

            var traces = Payload("/v1/traces");
            Assert.Contains("otlp-test-proxy", traces);
            Assert.Contains("secretless.policy", traces);
            Assert.Contains("otlp-policy", traces);
            Assert.Contains("secretless.credential.cache", traces);
            Assert.Contains("/v1/orders", traces);
            var metrics = Payload("/v1/metrics");
            Assert.Contains("otlp-api", metrics);
            Assert.DoesNotContain(_key, traces);
            Assert.DoesNotContain(_key, metrics);

            // The audit record as an OpenTelemetry log record, its fields as attributes; the
            // proxy's other log lines stay on the console.
            await WaitUntilAsync(() => Task.FromResult(Payload("/v1/logs").Contains("/v1/orders", StringComparison.Ordinal) && Payload("/v1/logs").Contains("/v2/other", StringComparison.Ordinal)));
            var logs = Payload("/v1/logs");
            Assert.Contains("otlp-test-proxy", logs);
            Assert.Contains("SecretlessProxy.Audit", logs);
            foreach (var attribute in new[] { "decision", "allow", "outcome", "forwarded", "policy", "otlp-policy", "credentialName", "otlp-key", "listener", "otlp-api", "traceId" })
            {
                Assert.Contains(attribute, logs);
            }

            Assert.DoesNotContain("Denied GET", logs);
            Assert.DoesNotContain(_key, logs);
            Assert.All(_collector.LogEntries, e => Assert.Equal("application/x-protobuf", e.RequestMessage.Headers!["Content-Type"].Single()));
        }
        finally
        {
            proxy.Kill(entireProcessTree: true);
            await proxy.WaitForExitAsync();
        }
    }

    /// <summary>Everything the receiver got on one path; protobuf keeps strings as UTF-8, so names and values are searchable.</summary>
    private string Payload(string path) => string.Join("\n", _collector.LogEntries
        .Where(e => e.RequestMessage.Path == path)
        .Select(e => Encoding.UTF8.GetString(e.RequestMessage.BodyAsBytes ?? [])));

    private static Process StartChild(string configPath, Dictionary<string, string> environment)
    {
        var process = ProxyProcess.Start(["run", "--config", configPath], environment, "OTEL_");
        // Drain the pipes so the child never blocks on a full buffer.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task<int> TryGetAsync(HttpClient client, string url)
    {
        try
        {
            return (int)(await client.GetAsync(url)).StatusCode;
        }
        catch (HttpRequestException)
        {
            return 0;
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        // Bounded poll for a child process and a batching exporter; not a timing assertion.
        for (var i = 0; i < 300; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail("condition not reached within 15 s");
    }

    public void Dispose()
    {
        _collector.Dispose();
        _upstream.Dispose();
        _config.Dispose();
    }
}
