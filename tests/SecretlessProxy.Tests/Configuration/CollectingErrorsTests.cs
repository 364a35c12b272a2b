using System.Text.Json.Nodes;
using Xunit;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>One run of <c>validate</c> shows every problem, not just the first.</summary>
public sealed class CollectingErrorsTests : IDisposable
{
    private readonly BaselineConfig _config = new();

    [Fact]
    public async Task Three_distinct_problems_are_all_reported_in_one_run()
    {
        _config.Listener("payments")["Upstream"] = "ftp://127.0.0.1:9000";
        _config.Policy("legacy-key")["Credential"] = "no-such-credential";
        _config.Policy("payments-read")["Inject"]!["Format"] = "Bearer";

        var result = await _config.ValidateAsync();

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("has 3 problem(s):", result.Error, StringComparison.Ordinal);
        Assert.Equal(3, result.Problems.Count);
        AssertProblem(result, Root + ":Listeners:payments:Upstream", "is not an absolute http or https URL");
        AssertProblem(result, Root + ":Policies:legacy-key:Credential", "names unknown credential 'no-such-credential'");
        AssertProblem(result, Root + ":Policies:payments-read:Inject:Format", "must contain {token} exactly once");
    }

    [Fact]
    public async Task Schema_and_semantic_problems_are_reported_together()
    {
        _config.Credential("static-key")["ApiKey"] = "inline";
        _config.Credential("payments-token")["ClientSecretFile"] = Path.Combine(_config.Files.Directory, "gone");
        _config.Section["Admin"] = new JsonObject { ["Url"] = "http://127.0.0.1" };

        var result = await _config.ValidateAsync();

        Assert.Equal(2, result.ExitCode);
        Assert.Equal(3, result.Problems.Count);
        AssertProblem(result, Root + ":Credentials:static-key:ApiKey", "is not a known key");
        AssertProblem(result, Root + ":Credentials:payments-token:ClientSecretFile", "does not exist");
        AssertProblem(result, Root + ":Admin:Url", "must name a port");
    }

    public void Dispose() => _config.Dispose();
}
