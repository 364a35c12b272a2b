using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Tests.Infrastructure;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary><c>Shutdown:DrainTimeout</c>: validated by its key, bound into the snapshot, and fixed for the process's life.</summary>
public sealed class ShutdownConfigTests : IDisposable
{
    private const string Key = Root + ":Shutdown:DrainTimeout";

    private readonly BaselineConfig _config = new();

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("-00:00:05")]
    public async Task A_drain_timeout_that_is_not_positive_is_named(string value)
    {
        _config.Section["Shutdown"] = new JsonObject { ["DrainTimeout"] = value };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key, value.StartsWith('-') ? string.Empty : "must be a positive duration");
        AssertOnlyKeys(result, Key);
    }

    [Fact]
    public async Task A_drain_timeout_that_is_not_a_duration_is_named_by_the_schema()
    {
        _config.Section["Shutdown"] = new JsonObject { ["DrainTimeout"] = "25s" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key, string.Empty);
        // The binder's own conversion failure comes too; it is filed under the section but names the key.
        Assert.All(result.Problems.Where(p => !p.StartsWith(Key + ": ", StringComparison.Ordinal)), p => Assert.Contains("'" + Key + "'", p, StringComparison.Ordinal));
        AssertOnlyKeys(result, Key, Root);
    }

    [Fact]
    public async Task A_misspelt_shutdown_key_is_named()
    {
        _config.Section["Shutdown"] = new JsonObject { ["DrainTimout"] = "00:00:10" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Shutdown:DrainTimout", "is not a known key");
        AssertOnlyKeys(result, Root + ":Shutdown:DrainTimout");
    }

    [Fact]
    public async Task The_drain_timeout_is_bound_into_the_snapshot_with_a_default()
    {
        using var tokenClient = new HttpMessageInvoker(new SocketsHttpHandler());
        var loader = new ConfigLoader(TimeProvider.System, tokenClient);

        var defaulted = await loader.LoadAsync(_config.Write(), includeEnvironment: false, checkFiles: false);
        _config.Section["Shutdown"] = new JsonObject { ["DrainTimeout"] = "00:01:30" };
        var set = await loader.LoadAsync(_config.Write(), includeEnvironment: false, checkFiles: false);

        Assert.Equal(ShutdownOptions.DefaultDrainTimeout, defaulted.Snapshot!.DrainTimeout);
        Assert.Equal(TimeSpan.FromSeconds(25), ShutdownOptions.DefaultDrainTimeout);
        Assert.Equal(TimeSpan.FromSeconds(90), set.Snapshot!.DrainTimeout);
    }

    [Fact]
    public async Task Changing_the_drain_timeout_on_reload_is_rejected_as_needing_a_restart()
    {
        using var config = new TestConfig();
        config.RouteListener("api", "http://127.0.0.1:9")
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("key", "reload-key") })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "key"))
            .Set("Shutdown", new JsonObject { ["DrainTimeout"] = "00:00:10" });
        await using var proxy = await ProxyHarness.StartAsync(config.Write());

        config.Set("Shutdown", new JsonObject { ["DrainTimeout"] = "00:00:11" });
        config.Write();
        var rejected = await proxy.AdminPostAsync("/reload");

        Assert.Equal((HttpStatusCode)422, rejected.StatusCode);
        var reasons = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement.GetProperty("reasons");
        Assert.Equal(Key + " changed; this needs a restart (the running version keeps serving)", Assert.Single(reasons.EnumerateArray()).GetString());
        Assert.Equal(TimeSpan.FromSeconds(10), proxy.App.State.Snapshot.DrainTimeout);
    }

    public void Dispose() => _config.Dispose();
}
