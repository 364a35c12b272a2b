using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Tests.Cli;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>The configurations shipped in the repository are the ones newcomers copy: they must be right.</summary>
public sealed class ExampleConfigTests : IDisposable
{
    private const string MissingFile = "does not exist";

    private readonly string _directory = Directory.CreateTempSubdirectory("secretless-example-").FullName;

    public static TheoryData<string> Examples()
    {
        var data = new TheoryData<string>();
        foreach (var example in RepoPaths.ExampleConfigs())
        {
            data.Add(example);
        }

        return data;
    }

    [Fact]
    public void The_known_examples_are_found()
    {
        var examples = RepoPaths.ExampleConfigs();

        Assert.Contains("deploy/examples/contract.json", examples);
        Assert.Contains("deploy/kubernetes/base/appsettings.json", examples);
        Assert.Contains("deploy/kubernetes/overlays/explicit/appsettings.json", examples);
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public async Task Example_passes_the_schema(string example)
    {
        var schema = await ConfigSchemaValidator.LoadEmbeddedAsync();
        var errors = new List<ConfigError>();

        schema.Validate(await File.ReadAllTextAsync(RepoPaths.Combine(example)), errors);

        Assert.True(errors.Count == 0, string.Join("\n", errors));
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public async Task Example_is_semantically_valid_apart_from_secret_files(string example)
    {
        using var tokenClient = new HttpMessageInvoker(new SocketsHttpHandler());
        var result = await new ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(RepoPaths.Combine(example), includeEnvironment: false, checkFiles: false);

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
    }

    [Fact]
    public async Task Contract_example_fails_only_because_its_secret_files_are_not_mounted()
    {
        // Guard: this machine must not have the files the example points at.
        Assert.False(File.Exists("/run/secrets/payments-client-secret"));
        Assert.False(File.Exists("/run/secrets/api-key"));

        var result = await CliRunner.ValidateAsync(RepoPaths.Combine("deploy", "examples", "contract.json"));

        Assert.Equal(2, result.ExitCode);
        Assert.Equal(
            [
                "SecretlessProxy:Credentials:payments-token:ClientSecretFile: file '/run/secrets/payments-client-secret' does not exist",
                "SecretlessProxy:Credentials:static-key:Path: file '/run/secrets/api-key' does not exist",
            ],
            result.Problems.Order(StringComparer.Ordinal));
        Assert.All(result.Problems, p => Assert.EndsWith(MissingFile, p, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Contract_example_with_its_secret_files_present_is_valid()
    {
        var json = JsonNode.Parse(await File.ReadAllTextAsync(RepoPaths.Combine("deploy", "examples", "contract.json")))!;
        var credentials = json["SecretlessProxy"]!["Credentials"]!;
        var clientSecret = Path.Combine(_directory, "payments-client-secret");
        var apiKey = Path.Combine(_directory, "api-key");
        await File.WriteAllTextAsync(clientSecret, "client-secret\n");
        await File.WriteAllTextAsync(apiKey, "api-key\n");
        Assert.Equal("/run/secrets/payments-client-secret", credentials["payments-token"]!["ClientSecretFile"]!.GetValue<string>());
        Assert.Equal("/run/secrets/api-key", credentials["static-key"]!["Path"]!.GetValue<string>());
        credentials["payments-token"]!["ClientSecretFile"] = clientSecret;
        credentials["static-key"]!["Path"] = apiKey;
        var path = Path.Combine(_directory, "contract.json");
        await File.WriteAllTextAsync(path, json.ToJsonString());

        var result = await CliRunner.ValidateAsync(path);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("is valid: 1 listener(s), 2 polic(ies), 2 credential(s)", result.Output, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
