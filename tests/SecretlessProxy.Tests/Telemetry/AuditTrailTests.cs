using System.Text.Json;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Telemetry;

/// <summary>One audit line per decision, to a file an auditor collects, and the recent ones on the admin port.</summary>
public sealed class AuditTrailTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "audit-key-" + Guid.NewGuid().ToString("N");
    private readonly string _auditFile;

    public AuditTrailTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        _auditFile = Path.Combine(_config.Directory, "audit", "audit.jsonl");
        _config.RouteListener("audited", _upstream.LoopbackUrl())
            .Set("Audit", new JsonObject { ["Sink"] = "File", ["Path"] = _auditFile })
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) })
            .Policy("reads", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ["GET"]), "key", "X-Api-Key", "{token}"));
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(_key);
        return harness;
    }

    private async Task<List<JsonElement>> AuditLinesAsync(int expected)
    {
        // The file is written by a background writer; poll (bounded) until the lines are there.
        for (var i = 0; i < 200; i++)
        {
            if (File.Exists(_auditFile))
            {
                // Decisions only: the hash chain's start and stop records frame them (AuditChainTests).
                var lines = (await File.ReadAllLinesAsync(_auditFile)).Where(l => l.Length > 0)
                    .Select(l => JsonDocument.Parse(l).RootElement.Clone()).Where(r => !r.TryGetProperty("chain", out _)).ToList();
                if (lines.Count >= expected)
                {
                    return lines;
                }
            }

            await Task.Delay(25);
        }

        Assert.Fail("audit file did not get " + expected + " lines");
        return [];
    }

    [Fact]
    public async Task Each_decision_is_one_json_line_with_who_where_what_and_why_and_never_the_value()
    {
        await using var proxy = await StartAsync();
        await proxy.GetAsync("audited", "/v1/orders?customer=42");
        await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Delete, proxy.Listener("audited", "/v1/orders/7")));

        var lines = await AuditLinesAsync(2);

        var allow = lines[0];
        Assert.Equal("allow", allow.GetProperty("decision").GetString());
        Assert.Equal("forwarded", allow.GetProperty("outcome").GetString());
        Assert.Equal("reads", allow.GetProperty("policy").GetString());
        Assert.Equal("key", allow.GetProperty("credential").GetProperty("name").GetString());
        Assert.Equal("File", allow.GetProperty("credential").GetProperty("source").GetString());
        var destination = allow.GetProperty("destination");
        Assert.Equal("http", destination.GetProperty("scheme").GetString());
        Assert.Equal("127.0.0.1", destination.GetProperty("host").GetString());
        Assert.Equal(_upstream.Ports[0], destination.GetProperty("port").GetInt32());
        Assert.Equal("GET", destination.GetProperty("method").GetString());
        Assert.Equal("/v1/orders", destination.GetProperty("path").GetString());
        Assert.Equal("audited", allow.GetProperty("listener").GetString());
        Assert.Equal(32, allow.GetProperty("traceId").GetString()!.Length);
        // The caller is this test process, attested by the kernel's socket tables.
        Assert.Equal(Environment.ProcessId, allow.GetProperty("caller").GetProperty("pid").GetInt32());
        Assert.Equal(new FileInfo("/proc/self/exe").LinkTarget, allow.GetProperty("caller").GetProperty("executable").GetString());
        Assert.Equal(64, allow.GetProperty("caller").GetProperty("sha256").GetString()!.Length);
        Assert.Equal(JsonValueKind.Null, allow.GetProperty("identity").ValueKind);

        var deny = lines[1];
        Assert.Equal("deny", deny.GetProperty("decision").GetString());
        Assert.Equal("denied", deny.GetProperty("outcome").GetString());
        Assert.Contains("no policy matches", deny.GetProperty("reason").GetString());
        Assert.Equal(JsonValueKind.Null, deny.GetProperty("policy").ValueKind);

        var text = await File.ReadAllTextAsync(_auditFile);
        Assert.DoesNotContain(_key, text);
        Assert.DoesNotContain("customer=42", text);

        // The same facts as a span event.
        var span = Assert.Single(proxy.Spans, s => s.OperationName == "secretless.proxy" && (string?)s.GetTagItem("url.path") == "/v1/orders/7" && (string?)s.GetTagItem("secretless.listener") == "audited");
        var ev = Assert.Single(span.Events, e => e.Name == "secretless.decision");
        Assert.Equal("deny", ev.Tags.Single(t => t.Key == "secretless.decision").Value);
    }

    [Fact]
    public async Task Recent_decisions_are_served_newest_first_on_the_admin_port()
    {
        await using var proxy = await StartAsync();
        for (var i = 0; i < 5; i++)
        {
            await proxy.GetAsync("audited", "/v1/item/" + i);
        }

        using var admin = new HttpClient();
        var json = JsonDocument.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=3"))).RootElement;

        var decisions = json.GetProperty("decisions").EnumerateArray().ToList();
        Assert.Equal(3, decisions.Count);
        Assert.Equal(["/v1/item/4", "/v1/item/3", "/v1/item/2"], decisions.Select(d => d.GetProperty("destination").GetProperty("path").GetString()));
    }

    [Fact]
    public async Task The_file_is_rotated_when_it_reaches_its_size_limit()
    {
        ((JsonObject)_config.Section["Audit"]!)["MaxFileBytes"] = 2048;
        await using var proxy = await StartAsync();
        for (var i = 0; i < 12; i++)
        {
            await proxy.GetAsync("audited", "/v1/rotate/" + i);
        }

        // The writer runs in the background: wait (bounded) until the last decision is on disk.
        for (var i = 0; i < 200 && !LastLineWritten(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(File.Exists(_auditFile + ".1"));
        Assert.True(new FileInfo(_auditFile).Length <= 2048);
        Assert.True(new FileInfo(_auditFile + ".1").Length <= 2048);
        var all = (await File.ReadAllLinesAsync(_auditFile + ".1")).Concat(await File.ReadAllLinesAsync(_auditFile)).Where(l => l.Length > 0).ToList();
        Assert.All(all, l => JsonDocument.Parse(l));
        Assert.Contains(all, l => l.Contains("/v1/rotate/11", StringComparison.Ordinal));
    }

    private bool LastLineWritten()
    {
        try
        {
            return File.Exists(_auditFile + ".1") && File.ReadAllText(_auditFile).Contains("/v1/rotate/11", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _config.Dispose();
    }
}
