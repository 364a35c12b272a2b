using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Configuration;

namespace SecretlessProxy.Tests.Cli;

/// <summary><c>run</c> refuses an invalid configuration before binding anything: exit 2, the key named on stderr.</summary>
public sealed class RunCommandTests : IDisposable
{
    private readonly BaselineConfig _config = new();

    [Fact]
    public async Task Run_with_an_invalid_config_exits_2_and_names_the_key()
    {
        _config.Policy("legacy-key")["Credential"] = "static-kee";
        var path = _config.Write();

        var result = await CliRunner.RunAsync("run", "--config", path);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("configuration '" + path + "' is invalid:", result.Error, StringComparison.Ordinal);
        BaselineConfig.AssertProblem(result, "SecretlessProxy:Policies:legacy-key:Credential", "names unknown credential 'static-kee'");
        Assert.Empty(result.Output);
    }

    [Fact]
    public async Task Run_with_a_misspelt_key_exits_2_and_names_it()
    {
        _config.Listener("payments")["Upstrem"] = "http://127.0.0.1:9000";

        var result = await CliRunner.RunAsync("run", "--config", _config.Write());

        BaselineConfig.AssertProblem(result, "SecretlessProxy:Listeners:payments:Upstrem", "is not a known key");
    }

    [Fact]
    public async Task Run_with_a_conflicting_fixed_port_exits_2_before_binding()
    {
        // Would bind 127.0.0.1:18083 if validation let it through; it must not get that far.
        _config.Section["Admin"] = new JsonObject { ["Url"] = "http://127.0.0.1:18083" };
        _config.Listener("payments")["Url"] = "http://127.0.0.1:18083";

        var result = await CliRunner.RunAsync("run", "--config", _config.Write());

        BaselineConfig.AssertProblem(result, "SecretlessProxy:Listeners:payments:Url", "port 18083 is already used by SecretlessProxy:Admin:Url");
    }

    [Fact]
    public async Task Run_with_a_missing_file_exits_2()
    {
        var path = Path.Combine(_config.Files.Directory, "missing.json");

        var result = await CliRunner.RunAsync("run", "--config", path);

        BaselineConfig.AssertProblem(result, "(file)", "cannot read '" + path + "'");
    }

    [Fact]
    public async Task Validate_without_config_option_is_a_usage_error()
    {
        var result = await CliRunner.RunAsync("validate");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--config", result.Error, StringComparison.Ordinal);
    }

    public void Dispose() => _config.Dispose();
}
