using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// A configuration that validates cleanly (one route listener, a File and an OAuth2 credential whose
/// secret files exist, two policies). Each error test breaks exactly one thing in it, so every
/// problem reported is caused by that one change.
/// </summary>
public sealed class BaselineConfig : IDisposable
{
    public const string Root = "SecretlessProxy";

    public BaselineConfig()
    {
        Files = new TestConfig();
        ApiKeyFile = Files.SecretFile("api-key", "file-api-key-" + Guid.NewGuid().ToString("N"));
        ClientSecretFile = Files.SecretFile("client-secret", "client-secret-" + Guid.NewGuid().ToString("N"));
        Files.RouteListener("payments", "http://127.0.0.1:9000")
            .Credential("static-key", new JsonObject { ["Source"] = "File", ["Path"] = ApiKeyFile })
            .Credential("payments-token", new JsonObject
            {
                ["Source"] = "OAuth2ClientCredentials",
                ["TokenUrl"] = "https://auth.example.com/oauth/token",
                ["ClientId"] = "orders-service",
                ["ClientSecretFile"] = ClientSecretFile,
                ["Scopes"] = new JsonArray("payments.read"),
            })
            .Policy("payments-read", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ["GET"]), "payments-token"))
            .Policy("legacy-key", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/legacy/"), "static-key", "X-Api-Key", "{token}"));
    }

    public TestConfig Files { get; }

    public string ApiKeyFile { get; }

    public string ClientSecretFile { get; }

    public JsonObject Section => Files.Section;

    public JsonObject Listener(string name) => Section["Listeners"]![name]!.AsObject();

    public JsonObject Credential(string name) => Section["Credentials"]![name]!.AsObject();

    public JsonObject Policy(string name) => Section["Policies"]![name]!.AsObject();

    public string Write() => Files.Write();

    public Task<CliResult> ValidateAsync() => CliRunner.ValidateAsync(Write());

    /// <summary>Asserts exit code 2 and that a printed problem names <paramref name="key"/> with a message containing <paramref name="fragment"/>.</summary>
    public static void AssertProblem(CliResult result, string key, string fragment)
    {
        Assert.True(result.ExitCode == 2, "expected exit code 2\n" + result);
        Assert.True(
            result.Problems.Any(p => p.StartsWith(key + ": ", StringComparison.Ordinal) && p.Contains(fragment, StringComparison.Ordinal)),
            "expected a problem '" + key + ": ...' containing '" + fragment + "'\n" + result);
    }

    /// <summary>Asserts that every printed problem is at one of <paramref name="keys"/>: the change caused nothing else.</summary>
    public static void AssertOnlyKeys(CliResult result, params string[] keys)
    {
        Assert.NotEmpty(result.Problems);
        foreach (var problem in result.Problems)
        {
            Assert.True(keys.Any(k => problem.StartsWith(k + ": ", StringComparison.Ordinal)), "unexpected problem '" + problem + "'\n" + result);
        }
    }

    public void Dispose() => Files.Dispose();
}
