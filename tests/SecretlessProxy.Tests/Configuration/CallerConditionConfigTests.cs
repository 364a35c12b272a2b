using System.Text.Json.Nodes;
using Xunit;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// An Executables or ExecutableSha256 condition is a boundary only between uids, so the
/// configuration must say which uids it trusts (Uids) or that it accepts impersonation by the
/// caller's own uid (SameUidCanImpersonate: true).
/// </summary>
public sealed class CallerConditionConfigTests : IDisposable
{
    private const string Caller = Root + ":Policies:legacy-key:Caller";
    private const string Hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    private readonly BaselineConfig _config = new();

    public void Dispose() => _config.Dispose();

    [Theory]
    [InlineData("Executables")]
    [InlineData("ExecutableSha256")]
    public async Task An_executable_condition_without_Uids_is_refused_and_says_what_it_relies_on(string list)
    {
        _config.Policy("legacy-key")["Caller"] = new JsonObject { [list] = new JsonArray(list == "Executables" ? "/usr/bin/curl" : Hash) };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Caller, "a boundary only between uids");
        AssertProblem(result, Caller, "add Uids");
        AssertProblem(result, Caller, "SameUidCanImpersonate: true");
        AssertOnlyKeys(result, Caller);
    }

    [Fact]
    public async Task An_executable_condition_with_Uids_or_the_acknowledgement_is_valid()
    {
        _config.Policy("legacy-key")["Caller"] = new JsonObject { ["Uids"] = new JsonArray(1000), ["Executables"] = new JsonArray("/usr/bin/curl"), ["ExecutableSha256"] = new JsonArray(Hash) };
        var withUids = await _config.ValidateAsync();
        _config.Policy("legacy-key")["Caller"] = new JsonObject { ["Executables"] = new JsonArray("/usr/bin/curl"), ["SameUidCanImpersonate"] = true };
        var acknowledged = await _config.ValidateAsync();

        Assert.True(withUids.ExitCode == 0, withUids.ToString());
        Assert.True(acknowledged.ExitCode == 0, acknowledged.ToString());
    }

    [Fact]
    public async Task A_false_acknowledgement_is_no_acknowledgement()
    {
        _config.Policy("legacy-key")["Caller"] = new JsonObject { ["Executables"] = new JsonArray("/usr/bin/curl"), ["SameUidCanImpersonate"] = false };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Caller, "a boundary only between uids");
        AssertOnlyKeys(result, Caller);
    }

    [Fact]
    public async Task The_acknowledgement_without_an_executable_condition_is_refused()
    {
        _config.Policy("legacy-key")["Caller"] = new JsonObject { ["Uids"] = new JsonArray(1000), ["SameUidCanImpersonate"] = true };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Caller + ":SameUidCanImpersonate", "applies only to Executables and ExecutableSha256");
        AssertOnlyKeys(result, Caller + ":SameUidCanImpersonate");
    }

    [Fact]
    public async Task The_acknowledgement_must_be_a_boolean()
    {
        _config.Policy("legacy-key")["Caller"] = new JsonObject { ["Executables"] = new JsonArray("/usr/bin/curl"), ["SameUidCanImpersonate"] = "yes" };

        var result = await _config.ValidateAsync();

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(result.Problems, p => p.StartsWith(Caller + ":SameUidCanImpersonate: ", StringComparison.Ordinal));
    }
}
