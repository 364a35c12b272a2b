using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Telemetry;

/// <summary>What operators see: Prometheus metrics, spans with HTTP semantic conventions, trace context.</summary>
public sealed class TelemetryTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly FakeTokenEndpoint _tokens = new();
    private readonly TestConfig _config = new();
    private readonly string _clientSecret = "client-secret-" + Guid.NewGuid().ToString("N");
    private readonly string _listener = "tel-" + Guid.NewGuid().ToString("N")[..8];

    // Metric series are process-wide (every proxy a test starts reports to the same meter name), so
    // the names in this class's labels are unique to it.
    private string Credential => "cred-" + _listener;

    public TelemetryTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        _config.RouteListener(_listener, _upstream.LoopbackUrl())
            .Credential(Credential, TestConfig.OAuth2(_tokens.TokenUrl, _config.SecretFile("client-secret", _clientSecret)))
            .Policy("api-read", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), Credential));
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(_clientSecret);
        harness.NeverEmit(() => _tokens.IssuedTokens);
        return harness;
    }

    private List<Activity> ProxySpans(ProxyHarness proxy) =>
        proxy.Spans.Where(s => s.OperationName == "secretless.proxy" && (string?)s.GetTagItem("secretless.listener") == _listener).ToList();

    [Fact]
    public async Task Metrics_endpoint_serves_prometheus_text_with_requests_injections_fetches_and_expiry()
    {
        await using var proxy = await StartAsync();
        await proxy.GetAsync(_listener, "/v1/a");
        await proxy.GetAsync(_listener, "/v1/b");
        await proxy.GetAsync(_listener, "/denied");

        using var admin = new HttpClient();
        var response = await admin.GetAsync(new Uri(proxy.App.AdminUri, "/metrics"));
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.MediaType);
        var lines = text.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("secretless_proxy_requests_total{", StringComparison.Ordinal) && l.Contains("decision=\"allow\"") && l.Contains("listener=\"" + _listener + "\"") && l.Contains("policy=\"api-read\"") && l.EndsWith(" 2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("secretless_proxy_requests_total{", StringComparison.Ordinal) && l.Contains("decision=\"deny\"") && l.Contains("listener=\"" + _listener + "\"") && l.EndsWith(" 1", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("secretless_proxy_injections_total{", StringComparison.Ordinal) && l.Contains("credential=\"" + Credential + "\"") && l.EndsWith(" 2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("secretless_credential_fetches_total{", StringComparison.Ordinal) && l.Contains("credential=\"" + Credential + "\"") && l.Contains("outcome=\"success\"") && l.EndsWith(" 1", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("secretless_credential_fetch_duration_seconds_count{", StringComparison.Ordinal));
        var expiry = Assert.Single(lines, l => l.StartsWith("secretless_credential_expires_in_seconds{", StringComparison.Ordinal) && l.Contains("credential=\"" + Credential + "\""));
        var seconds = double.Parse(expiry[(expiry.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(seconds, 3500, 3600);
        Assert.Contains(lines, l => l.StartsWith("secretless_proxy_added_latency_seconds_count{", StringComparison.Ordinal));
        // The runtime's own meter beside the proxy's: what an operator reads when latency or memory moves.
        Assert.Contains(lines, l => l.StartsWith("dotnet_gc_collections_total{", StringComparison.Ordinal) && l.Contains("gc_heap_generation=\"gen0\""));
        Assert.Contains(lines, l => l.StartsWith("dotnet_gc_pause_time_seconds_total", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("dotnet_thread_pool_queue_length_total", StringComparison.Ordinal));

        // The listener port does not serve metrics.
        var throughListener = await proxy.GetAsync(_listener, "/metrics");
        Assert.Equal(HttpStatusCode.Forbidden, throughListener.Response.StatusCode);
    }

    [Fact]
    public async Task Upstream_errors_are_counted()
    {
        _config.RouteListener(_listener, "http://127.0.0.1:" + WireMockFactory.FreePort());
        await using var proxy = await StartAsync();
        await proxy.GetAsync(_listener, "/v1/a");

        using var admin = new HttpClient();
        var text = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/metrics"));
        Assert.Contains(text.Split('\n'), l => l.StartsWith("secretless_proxy_upstream_errors_total{", StringComparison.Ordinal) && l.Contains("listener=\"" + _listener + "\"") && l.Contains("error=\"Request\""));
    }

    [Fact]
    public async Task Apps_trace_context_continues_through_the_proxy_to_the_upstream()
    {
        await using var proxy = await StartAsync();
        var traceId = ActivityTraceId.CreateRandom();
        var parentId = ActivitySpanId.CreateRandom();
        var request = new HttpRequestMessage(HttpMethod.Get, proxy.Listener(_listener, "/v1/traced"));
        request.Headers.TryAddWithoutValidation("traceparent", "00-" + traceId + "-" + parentId + "-01");

        var (response, _) = await proxy.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstreamTraceparent = Assert.Single(_upstream.LogEntries).RequestMessage.Headers!["traceparent"].Single();
        Assert.StartsWith("00-" + traceId + "-", upstreamTraceparent);
        Assert.DoesNotContain(parentId.ToString(), upstreamTraceparent);
        var span = Assert.Single(ProxySpans(proxy));
        Assert.Equal(traceId, span.TraceId);
        Assert.Equal("GET", span.GetTagItem("http.request.method"));
        Assert.Equal("127.0.0.1", span.GetTagItem("server.address"));
        Assert.Equal("/v1/traced", span.GetTagItem("url.path"));
        Assert.Equal(200, span.GetTagItem("http.response.status_code"));

        // The credential fetch is a child span of the request that triggered it.
        var fetch = Assert.Single(proxy.Spans, s => s.OperationName == "secretless.credential.fetch" && s.TraceId == traceId);
        Assert.Equal(span.SpanId, fetch.ParentSpanId);
        Assert.Equal("success", fetch.GetTagItem("secretless.outcome"));
    }

    [Fact]
    public async Task Query_strings_are_not_recorded_by_default()
    {
        await using var proxy = await StartAsync();
        await proxy.GetAsync(_listener, "/v1/search?email=person%40example.com&q=private");

        var span = Assert.Single(ProxySpans(proxy));
        Assert.Null(span.GetTagItem("url.query"));
        var trace = proxy.Spans.Where(s => s.TraceId == span.TraceId).ToList();
        Assert.True(trace.Count >= 3, "expected server, proxy and client spans in the trace");
        Assert.All(trace, s => Assert.DoesNotContain(s.TagObjects, t => t.Value?.ToString()?.Contains("private", StringComparison.Ordinal) == true || t.Value?.ToString()?.Contains("example.com", StringComparison.Ordinal) == true));
    }

    [Fact]
    public async Task A_listener_can_opt_in_to_query_recording_with_redaction()
    {
        ((JsonObject)_config.Section["Listeners"]![_listener]!)["RecordQuery"] = true;
        ((JsonObject)_config.Section["Listeners"]![_listener]!)["RedactQueryParameters"] = new JsonArray("email");
        await using var proxy = await StartAsync();

        await proxy.GetAsync(_listener, "/v1/search?email=person%40example.com&page=2");

        var span = Assert.Single(ProxySpans(proxy));
        Assert.Equal("email=REDACTED&page=2", span.GetTagItem("url.query"));
    }

    [Fact]
    public async Task Credential_unavailable_is_an_event_on_the_request_span()
    {
        _tokens.Respond(500, "{}");
        await using var proxy = await StartAsync();

        var (response, _) = await proxy.GetAsync(_listener, "/v1/a");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var span = Assert.Single(ProxySpans(proxy));
        var ev = Assert.Single(span.Events, e => e.Name == "secretless.credential.unavailable");
        Assert.Contains("answered 500", (string?)ev.Tags.Single(t => t.Key == "secretless.reason").Value);
        Assert.Equal(503, span.GetTagItem("http.response.status_code"));
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _tokens.Dispose();
        _config.Dispose();
    }
}
