using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using Xunit;
using SecretlessProxy.Cli;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Telemetry;

/// <summary>
/// The audit file is a hash chain: <c>secretless-proxy audit verify</c> accepts what the proxy wrote
/// (across restarts and size rotation) and names the first line an attacker changed, removed,
/// inserted or moved. The files are real, written by the proxy's own writer; the tampering is done
/// to them as an attacker with write access would.
/// </summary>
public sealed class AuditChainTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("audit-chain-");

    private string AuditFile => Path.Combine(_directory.FullName, "audit.jsonl");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task What_the_proxy_wrote_across_requests_restarts_and_rotation_verifies_and_the_logged_head_matches()
    {
        using var upstream = WireMockFactory.Start();
        upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        var config = new TestConfig();
        var key = "chain-key-" + Guid.NewGuid().ToString("N");
        config.RouteListener("audited", upstream.LoopbackUrl())
            .Set("Audit", new JsonObject { ["Sink"] = "File", ["Path"] = AuditFile, ["MaxFileBytes"] = 16384 })
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("key", key) })
            .Policy("reads", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ["GET"]), "key", "X-Api-Key", "{token}"));
        var path = config.Write();

        string? stopHead = null;
        for (var run = 0; run < 2; run++)
        {
            var proxy = await ProxyHarness.StartAsync(path);
            proxy.NeverEmit(key);
            for (var i = 0; i < 25; i++)
            {
                await proxy.GetAsync("audited", "/v1/run" + run + "/" + i);
            }

            await proxy.DisposeAsync();
            stopHead = proxy.Logs.Entries.Where(e => e.EventId.Id == EventIds.AuditChainHead).Select(e => (string?)e.State.Single(kv => kv.Key == "Head").Value).Last();
        }

        // 2 runs x (start + 25 decisions + stop) = 54 records of 400-600 bytes: rotated once at 16 KB,
        // and the two files together keep them all.
        Assert.True(File.Exists(AuditFile + ".1"));
        var (exit, output, _) = await CliAsync("audit", "verify", AuditFile + ".1", AuditFile, "--head", stopHead!);
        Assert.Equal(ExitCodes.Ok, exit);
        Assert.StartsWith("verified ", output);
        Assert.Contains("; head " + stopHead, output);

        // The current file alone verifies too: its first record continues the rotated one.
        var alone = AuditChainVerifier.Verify([AuditFile]);
        Assert.True(alone.Intact, alone.ToString());
        Assert.False(alone.StartsAtGenesis);

        // Sequence numbers run on without a gap over both files, and each run is framed by its chain records.
        var records = ReadRecords(AuditFile + ".1").Concat(ReadRecords(AuditFile)).ToList();
        Assert.Equal(Enumerable.Range(1, 54).Select(i => (long)i), records.Select(r => r.GetProperty("seq").GetInt64()));
        Assert.Equal(["start", "stop", "start", "stop"], records.Where(r => r.TryGetProperty("chain", out _)).Select(r => r.GetProperty("chain").GetString()));
        Assert.DoesNotContain(records, r => r.GetRawText().Contains(key, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_edited_line_is_named_and_verify_exits_non_zero()
    {
        var lines = await WriteChainAsync(6);
        lines[3] = lines[3].Replace("/r/2", "/r/9", StringComparison.Ordinal);
        await File.WriteAllLinesAsync(AuditFile, lines);

        var (exit, _, error) = await CliAsync("audit", "verify", AuditFile);

        Assert.Equal(ExitCodes.AuditChainBroken, exit);
        Assert.Equal(AuditFile + ":4: the record was changed (seq 4): its hash no longer matches the prev of the record after it", error.Trim());
    }

    [Fact]
    public async Task A_removed_line_is_named()
    {
        var lines = await WriteChainAsync(6);
        lines.RemoveAt(3);
        await File.WriteAllLinesAsync(AuditFile, lines);

        var result = AuditChainVerifier.Verify([AuditFile]);

        Assert.False(result.Intact);
        Assert.Equal(4, result.Line);
        Assert.Equal("has seq 5 after seq 3: record(s) seq 4 were removed", result.Message);
    }

    [Fact]
    public async Task An_inserted_copy_of_a_line_is_named()
    {
        var lines = await WriteChainAsync(6);
        lines.Insert(4, lines[2]);
        await File.WriteAllLinesAsync(AuditFile, lines);

        var result = AuditChainVerifier.Verify([AuditFile]);

        Assert.False(result.Intact);
        Assert.Equal(5, result.Line);
        Assert.StartsWith("repeats seq 3 of ", result.Message);
    }

    [Fact]
    public async Task A_forged_line_with_the_next_seq_is_named_as_inserted()
    {
        var lines = await WriteChainAsync(6);
        var forged = JsonNode.Parse(lines[2])!.AsObject();
        forged["destination"]!["path"] = "/forged";
        lines.Insert(3, forged.ToJsonString());
        await File.WriteAllLinesAsync(AuditFile, lines);

        var result = AuditChainVerifier.Verify([AuditFile]);

        Assert.False(result.Intact);
        Assert.StartsWith("repeats seq 3 of ", result.Message);
        Assert.Equal(4, result.Line);
    }

    [Fact]
    public async Task Swapped_lines_are_named_as_moved()
    {
        var lines = await WriteChainAsync(6);
        (lines[2], lines[3]) = (lines[3], lines[2]);
        await File.WriteAllLinesAsync(AuditFile, lines);

        var result = AuditChainVerifier.Verify([AuditFile]);

        Assert.False(result.Intact);
        Assert.Equal(3, result.Line);
        Assert.Contains("records were moved", result.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_torn_last_line_and_a_changed_last_record_are_found()
    {
        var lines = await WriteChainAsync(4);
        await File.WriteAllTextAsync(AuditFile, string.Join("\n", lines) + "\n" + lines[^1][..20]);
        var torn = AuditChainVerifier.Verify([AuditFile]);
        Assert.False(torn.Intact);
        Assert.Equal(lines.Count + 1, torn.Line);
        Assert.StartsWith("is incomplete", torn.Message);

        // The last record has no successor to vouch for it: the head kept elsewhere does.
        await File.WriteAllLinesAsync(AuditFile, lines);
        var head = AuditChainVerifier.Verify([AuditFile]).Head!;
        lines[^1] = lines[^1].Replace("\"stop\"", "\"stop \"", StringComparison.Ordinal);
        await File.WriteAllLinesAsync(AuditFile, lines);
        Assert.True(AuditChainVerifier.Verify([AuditFile]).Intact);
        var changed = AuditChainVerifier.Verify([AuditFile], head);
        Assert.False(changed.Intact);
        Assert.Equal(lines.Count, changed.Line);
    }

    [Fact]
    public async Task A_restart_continues_the_chain_of_the_file_it_finds()
    {
        var first = await WriteChainAsync(2);
        var all = await WriteChainAsync(3);

        Assert.Equal(2 + 2, first.Count);
        Assert.Equal(2 + 2 + 3 + 2, all.Count);
        Assert.Equal(AuditChain.Hash(Encoding.UTF8.GetBytes(first[^1])), JsonDocument.Parse(all[first.Count]).RootElement.GetProperty("prev").GetString());
        var result = AuditChainVerifier.Verify([AuditFile]);
        Assert.True(result.Intact, result.ToString());
        Assert.True(result.StartsAtGenesis);
        Assert.Equal(9, result.LastSeq);
    }

    [Fact]
    public async Task A_file_from_before_the_chain_or_foreign_lines_are_not_taken_for_chain_records()
    {
        await File.WriteAllTextAsync(AuditFile, "{\"decision\":\"allow\"}\n");
        var lines = (await WriteChainAsync(1)).ToList();

        // The writer chained on to the old line's hash; verify reports that line as outside the chain.
        Assert.Equal(AuditChain.Hash(Encoding.UTF8.GetBytes("{\"decision\":\"allow\"}")), JsonDocument.Parse(lines[1]).RootElement.GetProperty("prev").GetString());
        var result = AuditChainVerifier.Verify([AuditFile]);
        Assert.False(result.Intact);
        Assert.Equal(1, result.Line);
        Assert.StartsWith("is not part of the chain", result.Message);
    }

    /// <summary>Writes <paramref name="decisions"/> records through the proxy's writer (start and stop records around them) and returns every line of the file.</summary>
    private async Task<List<string>> WriteChainAsync(int decisions)
    {
        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(l => l.AddProvider(logs));
        var audit = new AuditLog(new AuditSettings(AuditSink.File, AuditFile, 10 * 1024 * 1024), TimeProvider.System, factory.CreateLogger<AuditLog>());
        for (var i = 0; i < decisions; i++)
        {
            audit.Record(new AuditRecord(DateTimeOffset.UnixEpoch, "l", "allow", "r", "p", "c", "File", AccessOutcome.Forwarded, "http", "127.0.0.1", 80, "GET", "/r/" + i, null));
        }

        await audit.DisposeAsync();
        return [.. await File.ReadAllLinesAsync(AuditFile)];
    }

    private static IEnumerable<JsonElement> ReadRecords(string path) =>
        File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement.Clone());

    private static async Task<(int Exit, string Output, string Error)> CliAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await CliApp.InvokeAsync(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }
}
