using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Listeners;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// The transparent overlay's config needs the Transparent listener mode, which is built on its own
/// branch. Once <see cref="ListenerKindRegistry"/> has it, this holds the config to the same bar as every
/// example (schema and semantics); until then, the only problems allowed are its listener's.
/// </summary>
public sealed class TransparentOverlayConfigTests
{
    private const string Example = "deploy/kubernetes/overlays/transparent/appsettings.json";
    private const string ListenerKey = "SecretlessProxy:Listeners:transparent";

    private static bool TransparentModeExists => ListenerKindRegistry.TryFind("Transparent", out _);

    [Fact]
    public async Task Transparent_overlay_config_is_valid_apart_from_secret_files()
    {
        using var tokenClient = new HttpMessageInvoker(new SocketsHttpHandler());
        var result = await new ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(RepoPaths.Combine(Example.Split('/')), includeEnvironment: false, checkFiles: false);

        if (TransparentModeExists)
        {
            Assert.True(result.IsValid, string.Join("\n", result.Errors));
        }
        else
        {
            Assert.All(result.Errors, e => Assert.StartsWith(ListenerKey, e.ToString(), StringComparison.Ordinal));

            // Everything but the listener, checked now: the same file with a Forward listener in its place.
            var json = JsonNode.Parse(await File.ReadAllTextAsync(RepoPaths.Combine(Example.Split('/'))))!;
            json["SecretlessProxy"]!["Listeners"]!["transparent"] = new JsonObject { ["Mode"] = "Forward", ["Url"] = "http://127.0.0.1:15001" };
            var directory = Directory.CreateTempSubdirectory("secretless-transparent-");
            try
            {
                var path = Path.Combine(directory.FullName, "appsettings.json");
                await File.WriteAllTextAsync(path, json.ToJsonString());
                var rest = await new ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(path, includeEnvironment: false, checkFiles: false);
                Assert.True(rest.IsValid, string.Join("\n", rest.Errors));
            }
            finally
            {
                directory.Delete(recursive: true);
            }
        }
    }
}
