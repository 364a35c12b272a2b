using System.Diagnostics;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Trace;
using SecretlessProxy.Hosting;
using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A real proxy (Kestrel on dynamic loopback ports) with everything it emits captured: logs at
/// every level and every exported span. On dispose it fails the test if any registered secret
/// appears in anything emitted, so every functional test is also a leak test.
/// </summary>
public sealed class ProxyHarness : IAsyncDisposable
{
    private readonly List<Activity> _spans;
    private readonly List<Func<IEnumerable<string>>> _secrets = [];
    private readonly List<string> _responseBodies = [];

    private ProxyHarness(ProxyApp app, CapturingLoggerProvider logs, List<Activity> spans)
    {
        App = app;
        Logs = logs;
        _spans = spans;
        // The app's client: no trace propagation of its own (the proxy's tracing runs in this test
        // process and would otherwise rewrite the traceparent a test sets as the app).
        Client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, ActivityHeadersPropagator = null }) { Timeout = TimeSpan.FromSeconds(60) };
    }

    internal ProxyApp App { get; }

    public CapturingLoggerProvider Logs { get; }

    public HttpClient Client { get; }

    /// <summary>
    /// The spans of this proxy. The proxy's ActivitySource is one per process, so every proxy a test
    /// process runs sees every other's spans: a span that names the listener port it came in on
    /// (<c>network.local.port</c>, or <c>network.local.address</c> for a Unix socket) is kept only
    /// when that is one of this proxy's listeners.
    /// </summary>
    public IReadOnlyList<Activity> Spans
    {
        get
        {
            var ports = App.ListenerBindings.OfType<System.Net.IPEndPoint>().Select(e => e.Port).ToHashSet();
            var sockets = App.ListenerBindings.OfType<System.Net.Sockets.UnixDomainSocketEndPoint>().Select(e => e.ToString()).ToHashSet(StringComparer.Ordinal);
            lock (_spans)
            {
                return _spans.Where(s => s.GetTagItem("network.local.port") is int port ? ports.Contains(port)
                    : s.GetTagItem("network.local.address") is not string socket || sockets.Contains(socket)).ToArray();
            }
        }
    }

    /// <summary>Every span the process exported while this proxy ran, for the leak scan: more is safer.</summary>
    private Activity[] AllSpans()
    {
        lock (_spans)
        {
            return _spans.ToArray();
        }
    }

    public static async Task<ProxyHarness> StartAsync(string configPath, TimeProvider? time = null)
    {
        var logs = new CapturingLoggerProvider();
        var spans = new List<Activity>();
        var app = await ProxyApp.StartAsync(configPath, new ProxyAppOptions
        {
            TimeProvider = time ?? TimeProvider.System,
            ConsoleLogging = false,
            // As in LoopbackCallerResolverTests: a loaded CI machine must not turn into an unresolved caller.
            CallerScanBudget = TimeSpan.FromSeconds(10),
            ConfigureLogging = l =>
            {
                l.AddProvider(logs);
                // A provider-specific rule outranks the proxy's category rules (Microsoft.AspNetCore at
                // Warning and so on), so this sink sees every level of every category.
                l.AddFilter<CapturingLoggerProvider>(null, LogLevel.Trace);
            },
            ConfigureTracing = t => t.AddProcessor(new SimpleActivityExportProcessor(new SpanSink(spans))),
        });
        return new ProxyHarness(app, logs, spans);
    }

    public Uri Listener(string name, string pathAndQuery = "/") => new(App.GetListenerUri(name), pathAndQuery);

    /// <summary>Sends a request and keeps the response body for the leak scan.</summary>
    public async Task<(HttpResponseMessage Response, string Body)> SendAsync(HttpRequestMessage request)
    {
        var response = await Client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        lock (_responseBodies)
        {
            _responseBodies.Add(string.Join("\n", response.Headers.Select(h => h.Key + ": " + string.Join(",", h.Value))) + "\n" + body);
        }

        return (response, body);
    }

    public Task<(HttpResponseMessage Response, string Body)> GetAsync(string listener, string path, string? authorization = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, Listener(listener, path));
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        return SendAsync(request);
    }

    /// <summary>
    /// A state-changing admin call as an operator makes it: <c>POST</c> to the admin endpoint with the
    /// token from the configured <c>Admin:TokenFile</c> (none when the config has none).
    /// </summary>
    public async Task<HttpResponseMessage> AdminPostAsync(string pathAndQuery)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(App.AdminUri, pathAndQuery));
        if (App.State.Snapshot.Admin.TokenFile is { } tokenFile)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", (await File.ReadAllTextAsync(tokenFile)).Trim());
        }

        using var admin = new HttpClient();
        var response = await admin.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    /// <summary>Registers values that must never appear in logs, spans, responses or admin output.</summary>
    public void NeverEmit(params string[] secrets) => _secrets.Add(() => secrets);

    public void NeverEmit(Func<IEnumerable<string>> secrets) => _secrets.Add(secrets);

    /// <summary>Everything the proxy emitted, one string per item, for scanning.</summary>
    public async Task<IReadOnlyList<string>> EmittedAsync()
    {
        var emitted = new List<string>();
        emitted.AddRange(Logs.Entries.Select(e => "log: " + e.AllText()));
        foreach (var span in AllSpans())
        {
            emitted.Add("span: " + span.DisplayName + " " + span.StatusDescription + " " +
                string.Join(" ", span.TagObjects.Select(t => t.Key + "=" + t.Value)) + " " +
                string.Join(" ", span.Events.Select(e => e.Name + " " + string.Join(" ", e.Tags.Select(t => t.Key + "=" + t.Value)))));
        }

        lock (_responseBodies)
        {
            emitted.AddRange(_responseBodies.Select(b => "response: " + b));
        }

        using var admin = new HttpClient();
        // /metrics holds every metric label value the proxy produced. A proxy that has stopped
        // (POST /quitquitquit, a shutdown test) serves nothing more to scan.
        var paths = App.Stopping.IsCancellationRequested ? [] : new[] { "/healthz", "/readyz", "/credentials", "/inventory", "/metrics", "/decisions?limit=512" };
        foreach (var path in paths)
        {
            emitted.Add("admin " + path + ": " + await admin.GetStringAsync(new Uri(App.AdminUri, path)));
        }

        return emitted;
    }

    public async Task AssertNoSecretEmittedAsync()
    {
        var secrets = _secrets.SelectMany(s => s()).Where(s => !string.IsNullOrEmpty(s)).Distinct().ToArray();
        Assert.NotEmpty(secrets);
        foreach (var item in await EmittedAsync())
        {
            foreach (var secret in secrets)
            {
                Assert.False(item.Contains(secret, StringComparison.Ordinal), "a secret leaked into: " + item);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_secrets.Count > 0)
            {
                await AssertNoSecretEmittedAsync();
            }
        }
        finally
        {
            Client.Dispose();
            await App.DisposeAsync();
        }
    }

    private sealed class SpanSink(List<Activity> spans) : BaseExporter<Activity>
    {
        public override ExportResult Export(in Batch<Activity> batch)
        {
            lock (spans)
            {
                foreach (var activity in batch)
                {
                    spans.Add(activity);
                }
            }

            return ExportResult.Success;
        }
    }
}
