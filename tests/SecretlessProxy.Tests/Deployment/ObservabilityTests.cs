using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using Xunit;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// deploy/observability: the Prometheus alerting rules pass <c>promtool check rules</c> and their
/// unit tests (each alert fires on the series it is for, and not on healthy ones), and every metric
/// the rules and the Grafana dashboard name is one the proxy exports under that Prometheus name.
/// </summary>
public sealed partial class ObservabilityTests
{
    private const string Directory = "deploy/observability";
    private const string PromtoolMissing = "promtool (Debian's prometheus package) is not installed; tests/run.sh installs it";

    private static string PathOf(string file) => RepoPaths.Combine([.. Directory.Split('/'), file]);

    [RequiresFact("/usr/bin/promtool")]
    public async Task The_alerting_rules_are_valid_and_fire_on_the_series_they_are_for()
    {
        var check = await ExternalClient.RunAsync("/usr/bin/promtool", ["check", "rules", PathOf("alerts.yaml")]);
        Assert.True(check.ExitCode == 0, check.ToString());
        Assert.Contains("SUCCESS: 4 rules found", check.Output + check.Error);

        var unit = await ExternalClient.RunAsync("/usr/bin/promtool", ["test", "rules", PathOf("alerts.test.yaml")]);
        Assert.True(unit.ExitCode == 0, unit.ToString());
    }

    [Fact]
    public async Task Every_metric_the_dashboard_and_the_rules_name_is_one_the_proxy_exports()
    {
        var exported = ExportedPrometheusNames();
        var dashboard = JsonNode.Parse(await File.ReadAllTextAsync(PathOf("grafana-dashboard.json")))!;
        var expressions = dashboard["panels"]!.AsArray().SelectMany(p => p!["targets"]!.AsArray().Select(t => (string)t!["expr"]!))
            .Concat(dashboard["templating"]!["list"]!.AsArray().Select(v => (string?)v!["query"] ?? string.Empty))
            .Append(await File.ReadAllTextAsync(PathOf("alerts.yaml")))
            .ToList();

        var named = expressions.SelectMany(e => MetricName().Matches(e).Select(m => m.Value)).ToHashSet();
        Assert.NotEmpty(named);
        foreach (var name in named)
        {
            var family = HistogramSeries().Replace(name, string.Empty);
            Assert.True(exported.Contains(family), name + " is named in deploy/observability but the proxy exports no such metric; it exports " + string.Join(", ", exported.Order()));
        }

        // The dashboard covers what the governance issue asks an operator to see at a glance.
        foreach (var needed in new[] { "secretless_proxy_requests_total", "secretless_credential_fetches_total", "secretless_credential_expires_in_seconds", "secretless_proxy_added_latency_seconds_bucket", "secretless_proxy_upstream_errors_total" })
        {
            Assert.Contains(needed, named);
        }
    }

    [Fact]
    public async Task The_prometheus_names_the_check_relies_on_are_those_a_running_proxy_serves()
    {
        // The naming rule in ExportedPrometheusNames (dots to underscores, unit suffix, _total for
        // counters) checked against a real scrape, for the families one forwarded request produces.
        using var upstream = WireMockFactory.Start();
        upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        using var config = new TestConfig();
        config.RouteListener("observed", upstream.LoopbackUrl())
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("key", "observability-" + Guid.NewGuid().ToString("N")) })
            .Policy("reads", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ["GET"]), "key", "X-Api-Key", "{token}"));
        await using var proxy = await ProxyHarness.StartAsync(config.Write());
        await proxy.GetAsync("observed", "/v1/items");
        Assert.Equal("applied", JsonDocument.Parse(await (await proxy.AdminPostAsync("/reload")).Content.ReadAsStringAsync()).RootElement.GetProperty("outcome").GetString());

        using var admin = new HttpClient();
        var scrape = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/metrics"));
        var exported = ExportedPrometheusNames();
        foreach (var family in new[] { "secretless_proxy_requests_total", "secretless_proxy_injections_total", "secretless_proxy_added_latency_seconds", "secretless_proxy_config_reloads_total" })
        {
            Assert.Contains(family, exported);
            Assert.Contains(scrape.Split('\n'), l => l.StartsWith(family, StringComparison.Ordinal) && !l.StartsWith(family + "_", StringComparison.Ordinal) || l.StartsWith(family + "_bucket{", StringComparison.Ordinal));
        }

        Assert.Contains(scrape.Split('\n'), l => l.StartsWith("secretless_proxy_config_reloads_total{", StringComparison.Ordinal) && l.EndsWith("outcome=\"applied\"} 1", StringComparison.Ordinal));
    }

    /// <summary>
    /// Every instrument of the proxy's meter, under the name the OpenTelemetry Prometheus exporter
    /// gives it (dots to underscores, the unit as a suffix, <c>_total</c> for counters), from a meter
    /// built as the proxy builds it, observable gauges included.
    /// </summary>
    private static HashSet<string> ExportedPrometheusNames()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var factory = services.GetRequiredService<IMeterFactory>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name != ProxyMetrics.MeterName || instrument.Meter.Scope != factory)
                {
                    return;
                }

                var name = instrument.Name.Replace('.', '_') + instrument.Unit switch
                {
                    "s" => "_seconds",
                    "By" => "_bytes",
                    _ => string.Empty,
                };
                var type = instrument.GetType();
                var isCounter = type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(Counter<>) || type.GetGenericTypeDefinition() == typeof(ObservableCounter<>));
                lock (names)
                {
                    names.Add(isCounter ? name + "_total" : name);
                }
            },
        };
        listener.Start();
        var metrics = new ProxyMetrics(factory);
        metrics.ObserveCredentialExpiry(() => [], TimeProvider.System);
        metrics.ObserveSigningBuffers(() => 0, () => 0);
        metrics.ObserveLeafCertificates(() => 0);
        return names;
    }

    [GeneratedRegex("secretless_[a-z0-9_]+")]
    private static partial Regex MetricName();

    [GeneratedRegex("_(bucket|sum|count)$")]
    private static partial Regex HistogramSeries();
}
