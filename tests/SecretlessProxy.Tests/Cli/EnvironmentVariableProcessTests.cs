using Xunit;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Cli;

/// <summary>
/// The real environment-variable mapping (<c>SecretlessProxy__Listeners__payments__Upstream</c>), end to
/// end: the CLI runs in a child process whose environment alone carries the override, so this test
/// process's environment is never changed.
/// </summary>
public sealed class EnvironmentVariableProcessTests : IDisposable
{
    private readonly BaselineConfig _config = new();

    private static async Task<CliResult> ValidateInChildAsync(string configPath, Dictionary<string, string> environment)
    {
        // Only the overrides under test reach the child (ProxyProcess clears inherited SecretlessProxy* variables).
        var result = await ProxyProcess.RunAsync(["validate", "--config", configPath], environment);
        return new CliResult(result.ExitCode, result.Output, result.Error);
    }

    [Fact]
    public async Task Environment_variable_overrides_a_value_in_the_file()
    {
        _config.Listener("payments")["Upstream"] = "ftp://broken-in-the-file";
        var path = _config.Write();

        var broken = await ValidateInChildAsync(path, []);
        var fixedByEnvironment = await ValidateInChildAsync(path, new() { ["SecretlessProxy__Listeners__payments__Upstream"] = "https://payments.example.com" });

        BaselineConfig.AssertProblem(broken, "SecretlessProxy:Listeners:payments:Upstream", "'ftp://broken-in-the-file' is not an absolute http or https URL");
        Assert.True(fixedByEnvironment.ExitCode == 0, fixedByEnvironment.ToString());
    }

    [Fact]
    public async Task Bad_environment_variable_is_reported_at_its_configuration_key()
    {
        var path = _config.Write();

        var result = await ValidateInChildAsync(path, new() { ["SecretlessProxy__Policies__legacy-key__Credential"] = "nope" });

        BaselineConfig.AssertProblem(result, "SecretlessProxy:Policies:legacy-key:Credential", "names unknown credential 'nope'");
        BaselineConfig.AssertOnlyKeys(result, "SecretlessProxy:Policies:legacy-key:Credential");
    }

    public void Dispose() => _config.Dispose();
}
