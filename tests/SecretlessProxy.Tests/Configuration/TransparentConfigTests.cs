using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>A Transparent listener's keys get the same key-named errors as everything else.</summary>
public sealed class TransparentConfigTests : IDisposable
{
    private const string Key = "SecretlessProxy:Listeners:outbound";
    private readonly TestConfig _config = new();

    public TransparentConfigTests()
    {
        _config.Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", "k") })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["api.example.com"]), "key", "X-Key", "{token}"));
        _config.Section["Listeners"]!["outbound"] = new JsonObject { ["Mode"] = "Transparent", ["Url"] = "tcp://127.0.0.1:0" };
    }

    private JsonObject Listener => _config.Section["Listeners"]!["outbound"]!.AsObject();

    [Fact]
    public async Task Valid_transparent_configuration_passes()
    {
        Listener["Unmatched"] = "PassThrough";

        var result = await CliRunner.ValidateAsync(_config.Write());

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Transparent_listener_without_a_local_ca_is_an_error()
    {
        _config.Section.Remove("LocalCa");

        var result = await CliRunner.ValidateAsync(_config.Write());

        BaselineConfig.AssertProblem(result, "SecretlessProxy:LocalCa", "is required by a Transparent listener");
        BaselineConfig.AssertOnlyKeys(result, "SecretlessProxy:LocalCa");
    }

    [Theory]
    [InlineData("http://127.0.0.1:15001", "is not a tcp://address:port URL")]
    [InlineData("unix:/tmp/transparent.sock", "is not a tcp://address:port URL")]
    [InlineData("tcp://127.0.0.1", "")]
    public async Task Url_must_be_a_tcp_address_and_port(string url, string fragment)
    {
        Listener["Url"] = url;

        var result = await CliRunner.ValidateAsync(_config.Write());

        BaselineConfig.AssertProblem(result, Key + ":Url", fragment);
        BaselineConfig.AssertOnlyKeys(result, Key + ":Url");
    }

    [Theory]
    [InlineData("Upstream", "\"https://api.example.com\"", "original destination")]
    [InlineData("AllowedConnectPorts", "[443]", "applies to Forward listeners only")]
    [InlineData("Credential", "\"key\"", "applies to Postgres, MySql and Redis listeners only")]
    [InlineData("RedactQueryParameters", "[\"q\"]", "has no effect unless RecordQuery is true")]
    public async Task Keys_of_other_modes_are_named(string name, string json, string fragment)
    {
        Listener[name] = JsonNode.Parse(json);

        var result = await CliRunner.ValidateAsync(_config.Write());

        BaselineConfig.AssertProblem(result, Key + ":" + name, fragment);
        BaselineConfig.AssertOnlyKeys(result, Key + ":" + name);
    }

    [Fact]
    public async Task Unknown_mode_lists_transparent()
    {
        Listener["Mode"] = "Sideways";

        var result = await CliRunner.ValidateAsync(_config.Write());

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(Key + ":Mode", result.Error);
    }

    public void Dispose() => _config.Dispose();
}
