using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Governance;

/// <summary>
/// Observe, then enforce, end to end: an unmodified client script (real curl) runs through a proxy
/// with <c>Unmatched: Observe</c>; <c>policy suggest</c> turns the audit trail into policies; after a
/// reload the same script passes with the credential injected, and calls it never made are denied.
/// </summary>
public sealed class PolicySuggestTests : IAsyncDisposable
{
    private readonly RawUpstream _upstream = RawUpstream.Start();
    private readonly TestConfig _config = new();
    private readonly string _key = "suggest-" + Guid.NewGuid().ToString("N");
    private readonly string _auditFile;

    public PolicySuggestTests()
    {
        _auditFile = Path.Combine(_config.Directory, "audit.jsonl");
        _config.RouteListener("api", "http://127.0.0.1:" + _upstream.Port)
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) })
            .Set("Unmatched", "Observe")
            .Set("Audit", new JsonObject { ["Sink"] = "File", ["Path"] = _auditFile });
    }

    private static async Task<ExternalClient.Result> ScriptAsync(ProxyHarness proxy)
    {
        var url = proxy.App.GetListenerUri("api").ToString().TrimEnd('/');
        var script = "set -e\n" +
            "curl -sS --fail-with-body " + url + "/v1/orders/1 >/dev/null\n" +
            "curl -sS --fail-with-body -X POST -d '{\"item\":1}' " + url + "/v1/orders >/dev/null\n" +
            "curl -sS --fail-with-body " + url + "/v1/orders/2 >/dev/null\n";
        return await ExternalClient.RunAsync("bash", ["-c", script]);
    }

    [Fact]
    public async Task Suggested_policies_from_observed_traffic_let_the_same_script_pass_under_enforce_and_deny_the_rest()
    {
        var configPath = _config.Write();
        await using var proxy = await ProxyHarness.StartAsync(configPath);
        proxy.NeverEmit(_key);

        var observed = await ScriptAsync(proxy);
        Assert.True(observed.ExitCode == 0, observed.ToString());
        Assert.Equal(3, _upstream.Received.Count);
        Assert.All(_upstream.Received, r => Assert.Null(r.Header("X-Api-Key")));
        await Poll.UntilAsync(() => File.Exists(_auditFile) && File.ReadAllLines(_auditFile).Count(l => l.Contains("\"would-deny\"", StringComparison.Ordinal)) == 3, "three would-deny records");

        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await CliApp.InvokeAsync(["policy", "suggest", "--audit", _auditFile, "--config", configPath, "--credential", "key", "--header", "X-Api-Key"], output, error);
        Assert.True(exit == ExitCodes.Ok, error.ToString());
        var suggested = JsonNode.Parse(output.ToString())!;
        var policy = Assert.Single(suggested["SecretlessProxy"]!["Policies"]!.AsObject()).Value!;
        Assert.Equal(["127.0.0.1"], policy["Match"]!["Hosts"]!.AsArray().Select(h => (string)h!));
        Assert.Equal([_upstream.Port], policy["Match"]!["Ports"]!.AsArray().Select(p => (int)p!));
        Assert.Equal(["GET", "POST"], policy["Match"]!["Methods"]!.AsArray().Select(m => (string)m!));
        Assert.Equal("/v1/", (string)policy["Match"]!["PathPrefix"]!);
        Assert.Equal(["/usr/bin/curl"], policy["Caller"]!["Executables"]!.AsArray().Select(e => (string)e!));
        Assert.Null(suggested["SecretlessProxy"]!["Unmatched"]);

        // Applied as an operator would: the file replaced, validated, reloaded.
        await File.WriteAllTextAsync(configPath, output.ToString());
        Assert.Equal(ExitCodes.Ok, await CliApp.InvokeAsync(["validate", "--config", configPath], new StringWriter(), new StringWriter()));
        var reload = await proxy.AdminPostAsync("/reload");
        Assert.Equal("applied", JsonDocument.Parse(await reload.Content.ReadAsStringAsync()).RootElement.GetProperty("outcome").GetString());

        var enforced = await ScriptAsync(proxy);
        Assert.True(enforced.ExitCode == 0, enforced.ToString());
        Assert.Equal(6, _upstream.Received.Count);
        Assert.All(_upstream.Received.Skip(3), r => Assert.Equal(_key, r.Header("X-Api-Key")));

        // Calls the script never made: another method, and another caller (this test process).
        var url = proxy.App.GetListenerUri("api").ToString().TrimEnd('/');
        var delete = await ExternalClient.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", url + "/v1/orders/1"]);
        Assert.Equal("403", delete.Output);
        var (other, _) = await proxy.GetAsync("api", "/v1/orders/1");
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, other.StatusCode);
        Assert.Equal(6, _upstream.Received.Count);
    }

    [Fact]
    public async Task Traffic_no_policy_observed_is_reported_not_guessed_without_a_credential()
    {
        await File.WriteAllTextAsync(_auditFile,
            "{\"seq\":1,\"prev\":\"" + new string('0', 64) + "\",\"time\":\"2026-12-03T00:00:00Z\",\"chain\":\"start\"}\n" +
            "{\"decision\":\"would-deny\",\"reason\":\"r\",\"outcome\":\"passed-through\",\"policy\":null,\"destination\":{\"scheme\":\"https\",\"host\":\"api.example.com\",\"port\":443,\"method\":\"GET\",\"path\":\"/v2/items/9\"},\"listener\":\"egress\",\"caller\":\"unknown\"}\n" +
            "{\"decision\":\"deny\",\"reason\":\"r\",\"outcome\":\"denied\",\"policy\":null,\"destination\":{\"scheme\":\"https\",\"host\":\"evil.example.com\",\"port\":443,\"method\":\"GET\",\"path\":\"/\"},\"listener\":\"egress\",\"caller\":\"unknown\"}\n");
        var output = new StringWriter();
        var error = new StringWriter();

        var exit = await CliApp.InvokeAsync(["policy", "suggest", "--audit", _auditFile], output, error);

        Assert.Equal(ExitCodes.Failure, exit);
        Assert.Contains("not suggested: https://api.example.com:443 (GET /v2/items/9): no policy observed it, and no --credential was given", error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("evil.example.com", output.ToString() + error.ToString(), StringComparison.Ordinal);
    }

    public async ValueTask DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _config.Dispose();
    }
}
