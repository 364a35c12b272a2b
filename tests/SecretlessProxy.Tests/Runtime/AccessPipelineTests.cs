using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Core;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;
using SecretlessProxy.Tests.Listeners;

namespace SecretlessProxy.Tests.Runtime;

/// <summary>
/// The one access pipeline, through real listeners: each grant and refusal reaches the app as its
/// protocol's answer (problem response, PostgreSQL ErrorResponse), and the audit record, the span
/// and the request metric name the same outcome, the enum's wire name.
/// </summary>
public sealed partial class AccessPipelineTests : IDisposable
{
    private const string User = "orders_app";
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "pipeline-key-" + Guid.NewGuid().ToString("N");

    // Metric series are process-wide: the listener names are unique to this class's tests.
    private readonly string _api = "api-" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _db = "db-" + Guid.NewGuid().ToString("N")[..8];

    public AccessPipelineTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("upstream"));
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _config.Dispose();
    }

    [Fact]
    public void Every_outcome_has_one_kebab_case_wire_name_listed_in_the_architecture_document()
    {
        var names = Enum.GetValues<AccessOutcome>().Select(o => o.ToWireName()).ToArray();
        Assert.Equal(names.Length, names.Distinct(StringComparer.Ordinal).Count());
        Assert.All(names, n => Assert.Matches(KebabCase(), n));
        var doc = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "architecture.md"));
        var table = doc[doc.IndexOf("## Access outcomes", StringComparison.Ordinal)..];
        Assert.All(names, n => Assert.Contains("`" + n + "`", table, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Http_grant_and_refusals_answer_the_app_and_record_the_same_outcome_everywhere()
    {
        var port = _upstream.Ports[0];
        _config.RouteListener(_api, _upstream.LoopbackUrl())
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key), ["Username"] = User })
            .Policy("reads", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ports: [port]), "key"))
            .Policy("db-only", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"], "/db", ports: [port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key);

        var (ok, body) = await proxy.GetAsync(_api, "/v1/orders");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("upstream", body);

        var (denied, deniedBody) = await proxy.GetAsync(_api, "/elsewhere");
        AssertProblem(denied.StatusCode, deniedBody, HttpStatusCode.Forbidden, "policy-denied", "no policy matches");

        var (traced, tracedBody) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Trace, proxy.Listener(_api, "/v1/orders")));
        AssertProblem(traced.StatusCode, tracedBody, HttpStatusCode.MethodNotAllowed, "method-refused", "would echo the injected credential");

        var (database, databaseBody) = await proxy.GetAsync(_api, "/db/orders");
        AssertProblem(database.StatusCode, databaseBody, HttpStatusCode.Forbidden, "policy-denied", "policy 'db-only' authorizes database connections only");

        // Raw bytes: HttpClient would resolve the dot segment and rewrite the absolute form.
        var ambiguous = await RawAsync(proxy, "GET /v1/%2e%2e/admin HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 400", ambiguous, StringComparison.Ordinal);
        Assert.Contains("urn:secretless-proxy:problem:ambiguous-path", ambiguous, StringComparison.Ordinal);
        var absolute = await RawAsync(proxy, "GET http://elsewhere.example/v1/orders HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 400", absolute, StringComparison.Ordinal);
        Assert.Contains("urn:secretless-proxy:problem:absolute-form-refused", absolute, StringComparison.Ordinal);

        Assert.Single(_upstream.LogEntries);
        var records = await DecisionsAsync(proxy, _api);
        var spans = await SpansAsync(proxy, "secretless.proxy", _api, 6);
        var metrics = await MetricLinesAsync(proxy, _api);
        Assert.Equal(6, records.Count);
        Assert.Equal(6, spans.Count);

        AssertRecorded(records, spans, metrics, AccessOutcome.Forwarded, "allow", "/v1/orders", policy: "reads");
        AssertRecorded(records, spans, metrics, AccessOutcome.Denied, "deny", "/elsewhere", policy: null);
        AssertRecorded(records, spans, metrics, AccessOutcome.MethodRefused, "deny", "/v1/orders", policy: "reads");
        AssertRecorded(records, spans, metrics, AccessOutcome.Denied, "deny", "/db/orders", policy: "db-only");
        AssertRecorded(records, spans, metrics, AccessOutcome.AmbiguousPath, "refused", null, policy: null);
        AssertRecorded(records, spans, metrics, AccessOutcome.AbsoluteFormRefused, "refused", null, policy: null);
        // Only the grant names a credential.
        Assert.Single(records, r => r.GetProperty("credential").GetProperty("name").ValueKind == JsonValueKind.String);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task Database_grant_and_refusals_answer_the_app_with_error_responses_and_record_the_same_outcome_everywhere()
    {
        var password = "pipeline-db-" + Guid.NewGuid().ToString("N");
        await using var server = FakePostgresServer.Scram(password, 4096);
        var closedPort = WireMockFactory.FreePort();
        var missingPort = WireMockFactory.FreePort();
        var passwordFile = _config.SecretFile("db-password", password);
        var missingFile = _config.SecretFile("missing-password", password);
        var noTls = new JsonObject { ["Mode"] = "Disable" };
        _config.PostgresListener(_db, "localhost:" + server.Port, "db-login", noTls.DeepClone().AsObject())
            .PostgresListener(_db + "-http", "127.0.0.1:" + closedPort, "db-login", noTls.DeepClone().AsObject())
            .PostgresListener(_db + "-none", "127.0.0.2:" + closedPort, "db-login", noTls.DeepClone().AsObject())
            .PostgresListener(_db + "-missing", "127.0.0.1:" + missingPort, "missing-login", noTls.DeepClone().AsObject())
            .Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = passwordFile, ["Username"] = User })
            .Credential("missing-login", new JsonObject { ["Source"] = "File", ["Path"] = missingFile, ["Username"] = User })
            .Policy("orders-db", new JsonObject
            {
                ["Match"] = TestConfig.Match(["localhost"], ports: [server.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            })
            .Policy("missing-db", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"], ports: [missingPort]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            })
            .Policy("http-api", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], ports: [closedPort]), "db-login"));
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(password);
        File.Delete(missingFile);

        var granted = await PostgresWeakExchangeTests.LoginAsync(proxy, _db);
        Assert.Equal('Z', granted[^1].Type);

        var http = PostgresWeakExchangeTests.AssertRefused(await PostgresWeakExchangeTests.LoginAsync(proxy, _db + "-http"), "28000");
        Assert.Equal("denied by policy: policy 'http-api' injects header into HTTP requests; a database connection needs a policy with Inject DatabaseLogin", http);

        var none = PostgresWeakExchangeTests.AssertRefused(await PostgresWeakExchangeTests.LoginAsync(proxy, _db + "-none"), "28000");
        Assert.StartsWith("denied by policy: no policy matches", none, StringComparison.Ordinal);

        var missing = PostgresWeakExchangeTests.AssertRefused(await PostgresWeakExchangeTests.LoginAsync(proxy, _db + "-missing"), "57P03");
        Assert.StartsWith("policy 'missing-db' needs credential 'missing-login', which is unavailable", missing, StringComparison.Ordinal);

        var records = await DecisionsAsync(proxy, _db);
        var spans = await SpansAsync(proxy, "secretless.database.connection", _db, 4);
        var metrics = await MetricLinesAsync(proxy, _db);
        Assert.Equal(4, records.Count);
        Assert.Equal(4, spans.Count);
        AssertRecorded(records, spans, metrics, AccessOutcome.Connected, "allow", "/orders", policy: "orders-db", listener: _db);
        AssertRecorded(records, spans, metrics, AccessOutcome.Denied, "deny", "/orders", policy: "http-api", listener: _db + "-http");
        AssertRecorded(records, spans, metrics, AccessOutcome.Denied, "deny", "/orders", policy: null, listener: _db + "-none");
        AssertRecorded(records, spans, metrics, AccessOutcome.CredentialUnavailable, "allow", "/orders", policy: "missing-db", listener: _db + "-missing");
        var connected = Assert.Single(records, r => r.GetProperty("outcome").GetString() == "connected");
        Assert.Equal(User, connected.GetProperty("databaseUser").GetString());
        await proxy.AssertNoSecretEmittedAsync();
    }

    /// <summary>
    /// One access, three records of it: the audit record, the span and the request counter all say
    /// <paramref name="outcome"/>'s wire name with the same decision.
    /// </summary>
    private void AssertRecorded(List<JsonElement> records, List<Activity> spans, string[] metrics, AccessOutcome outcome, string decision, string? path, string? policy, string? listener = null)
    {
        listener ??= _api;
        var name = outcome.ToWireName();
        var record = Assert.Single(records, r =>
            r.GetProperty("outcome").GetString() == name && r.GetProperty("listener").GetString() == listener &&
            (path is null || r.GetProperty("destination").GetProperty("path").GetString() == path) &&
            r.GetProperty("policy").ValueKind == (policy is null ? JsonValueKind.Null : JsonValueKind.String));
        Assert.Equal(decision, record.GetProperty("decision").GetString());
        if (policy is not null)
        {
            Assert.Equal(policy, record.GetProperty("policy").GetString());
        }

        var span = Assert.Single(spans, s => s.TraceId.ToString() == record.GetProperty("traceId").GetString());
        Assert.Equal(name, span.GetTagItem("secretless.outcome"));
        Assert.Equal(listener, span.GetTagItem("secretless.listener"));
        Assert.Equal(policy, span.GetTagItem("secretless.policy"));
        Assert.Equal(decision, span.GetTagItem("secretless.decision"));
        var ev = Assert.Single(span.Events, e => e.Name == "secretless.decision");
        Assert.Equal(name, ev.Tags.Single(t => t.Key == "secretless.outcome").Value);

        Assert.Contains(metrics, l => l.Contains("listener=\"" + listener + "\"", StringComparison.Ordinal) &&
            l.Contains("outcome=\"" + name + "\"", StringComparison.Ordinal) && l.Contains("decision=\"" + decision + "\"", StringComparison.Ordinal));
    }

    private static void AssertProblem(HttpStatusCode status, string body, HttpStatusCode expected, string type, string detail)
    {
        Assert.Equal(expected, status);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("urn:secretless-proxy:problem:" + type, problem.GetProperty("type").GetString());
        Assert.Contains(detail, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// The spans of the listeners named <paramref name="listenerPrefix"/>*, once <paramref name="expected"/>
    /// have ended: a connection's span ends just after the app read its answer, so wait (bounded) for it.
    /// </summary>
    private static async Task<List<Activity>> SpansAsync(ProxyHarness proxy, string operation, string listenerPrefix, int expected)
    {
        List<Activity> spans = [];
        for (var i = 0; i < 200; i++)
        {
            spans = proxy.Spans.Where(s => s.OperationName == operation && ((string?)s.GetTagItem("secretless.listener"))?.StartsWith(listenerPrefix, StringComparison.Ordinal) == true).ToList();
            if (spans.Count >= expected)
            {
                break;
            }

            await Task.Delay(25);
        }

        return spans;
    }

    private static async Task<List<JsonElement>> DecisionsAsync(ProxyHarness proxy, string listenerPrefix)
    {
        using var admin = new HttpClient();
        var json = JsonDocument.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=100"))).RootElement;
        return json.GetProperty("decisions").EnumerateArray()
            .Where(d => d.GetProperty("listener").GetString()!.StartsWith(listenerPrefix, StringComparison.Ordinal))
            .Select(d => d.Clone())
            .ToList();
    }

    private static async Task<string[]> MetricLinesAsync(ProxyHarness proxy, string listenerPrefix)
    {
        using var admin = new HttpClient();
        var text = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/metrics"));
        return text.Split('\n')
            .Where(l => l.StartsWith("secretless_proxy_requests_total{", StringComparison.Ordinal) && l.Contains("listener=\"" + listenerPrefix, StringComparison.Ordinal))
            .ToArray();
    }

    /// <summary>Sends <paramref name="request"/> as bytes to the route listener and returns the whole answer.</summary>
    private async Task<string> RawAsync(ProxyHarness proxy, string request)
    {
        using var client = new TcpClient();
        var uri = proxy.Listener(_api);
        await client.ConnectAsync(IPAddress.Loopback, uri.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        using var answer = new MemoryStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await stream.CopyToAsync(answer, timeout.Token);
        return Encoding.UTF8.GetString(answer.ToArray());
    }

    [GeneratedRegex("^[a-z]+(-[a-z]+)*$")]
    private static partial Regex KebabCase();
}
