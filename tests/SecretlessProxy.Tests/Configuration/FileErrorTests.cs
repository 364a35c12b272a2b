using Xunit;
using SecretlessProxy.Tests.Cli;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>The config file itself cannot be used: it is missing or is not JSON.</summary>
public sealed class FileErrorTests : IDisposable
{
    private readonly BaselineConfig _config = new();

    [Fact]
    public async Task Baseline_config_is_valid()
    {
        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("is valid: 1 listener(s), 2 polic(ies), 2 credential(s)", result.Output, StringComparison.Ordinal);
        Assert.Empty(result.Error);
    }

    [Fact]
    public async Task Missing_file_exits_2_and_names_the_path()
    {
        var path = Path.Combine(_config.Files.Directory, "does-not-exist.json");

        var result = await CliRunner.ValidateAsync(path);

        Assert.Equal(2, result.ExitCode);
        var problem = Assert.Single(result.Problems);
        Assert.StartsWith("(file): cannot read '" + path + "'", problem, StringComparison.Ordinal);
        Assert.Contains("FileNotFoundException", problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Missing_folder_exits_2()
    {
        var path = Path.Combine(_config.Files.Directory, "no-such-folder", "proxy.json");

        var result = await CliRunner.ValidateAsync(path);

        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("(file): cannot read '" + path + "'", Assert.Single(result.Problems), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ \"SecretlessProxy\": { \"Listeners\": ")]
    [InlineData("{ \"SecretlessProxy\": { \"Unmatched\": Deny } }")]
    [InlineData("not json at all")]
    public async Task Invalid_json_exits_2_with_a_file_error(string text)
    {
        var path = Path.Combine(_config.Files.Directory, "broken.json");
        await File.WriteAllTextAsync(path, text);

        var result = await CliRunner.ValidateAsync(path);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("has 1 problem(s)", result.Error, StringComparison.Ordinal);
        Assert.StartsWith("(file): is not valid JSON", Assert.Single(result.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Empty_file_exits_2()
    {
        var path = Path.Combine(_config.Files.Directory, "empty.json");
        await File.WriteAllTextAsync(path, string.Empty);

        var result = await CliRunner.ValidateAsync(path);

        Assert.Equal(2, result.ExitCode);
        Assert.NotEmpty(result.Problems);
    }

    public void Dispose() => _config.Dispose();
}
