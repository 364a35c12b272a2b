using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Listeners;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// A listener kind is one folder and one registration: the registry, the schema's <c>Mode</c> enum
/// and the folders must name the same kinds, or a kind would validate in one place and be unknown
/// in another.
/// </summary>
public sealed class ListenerKindRegistryTests
{
    private static string[] SchemaModes()
    {
        using var schema = JsonDocument.Parse(File.ReadAllText(RepoPaths.Combine("appsettings.schema.json")));
        var mode = schema.RootElement.GetProperty("definitions").GetProperty("Listener").GetProperty("properties").GetProperty("Mode");
        return [.. mode.GetProperty("enum").EnumerateArray().Select(e => e.GetString()!)];
    }

    [Fact]
    public void Every_registered_kind_is_in_the_schema_and_every_schema_mode_is_registered()
    {
        var registered = ListenerKindRegistry.All.Select(k => k.Mode).ToArray();

        Assert.Equal(SchemaModes(), registered);
        Assert.Equal(registered.Length, registered.Distinct(StringComparer.OrdinalIgnoreCase).Count());
    }

    [Fact]
    public void Each_kind_is_registered_from_its_own_folder()
    {
        foreach (var kind in ListenerKindRegistry.All)
        {
            var type = kind.GetType();
            Assert.Equal("SecretlessProxy.Listeners." + kind.Mode, type.Namespace);

            var file = RepoPaths.Combine("src", "SecretlessProxy", "Listeners", kind.Mode, type.Name + ".cs");
            Assert.True(File.Exists(file), kind.Mode + ": expected its registration in " + file);
            Assert.Contains("class " + type.Name + " : IListenerKind", File.ReadAllText(file), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("Route", "Route")]
    [InlineData("postgres", "Postgres")]
    [InlineData("TRANSPARENT", "Transparent")]
    [InlineData("forward", "Forward")]
    public void A_mode_is_found_ignoring_case(string mode, string expected)
    {
        Assert.True(ListenerKindRegistry.TryFind(mode, out var kind));
        Assert.Equal(expected, kind.Mode);
    }

    [Theory]
    [InlineData("Bogus")]
    [InlineData("1")]
    [InlineData("")]
    [InlineData(null)]
    public void An_unknown_mode_finds_no_kind(string? mode)
    {
        Assert.False(ListenerKindRegistry.TryFind(mode, out _));
    }

    [Fact]
    public async Task An_unknown_mode_is_told_every_registered_mode()
    {
        using var config = new BaselineConfig();
        config.Listener("payments")["Mode"] = "Bogus";

        var result = await config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners:payments:Mode", "'Bogus' is not a listener mode; expected Route, Forward, Postgres, MySql, Transparent or Redis");
    }

    [Fact]
    public async Task A_missing_mode_is_told_every_registered_mode()
    {
        using var config = new BaselineConfig();
        config.Listener("payments").Remove("Mode");

        var result = await config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners:payments:Mode", "is required (Route, Forward, Postgres, MySql, Transparent or Redis)");
    }
    [Fact]
    public async Task A_key_another_kind_owns_is_reported_once_in_the_words_of_the_listener_kind()
    {
        // AllowedConnectPorts belongs to Forward; a Transparent listener says more about it than
        // Forward's generic "applies to Forward listeners only", and only its message is printed.
        using var config = new TestConfig();
        config.Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(config.Directory, "ca") })
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("key", "k") })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["api.example.com"]), "key", "X-Key", "{token}"));
        config.Section["Listeners"]!["outbound"] = new JsonObject
        {
            ["Mode"] = "Transparent",
            ["Url"] = "tcp://127.0.0.1:0",
            ["AllowedConnectPorts"] = new JsonArray(443),
            ["AcceptTls"] = true,
        };

        var result = await CliRunner.ValidateAsync(config.Write());

        var key = Root + ":Listeners:outbound:";
        var ports = Assert.Single(result.Problems, p => p.StartsWith(key + "AllowedConnectPorts: ", StringComparison.Ordinal));
        Assert.Contains("iptables --redirect-ports", ports, StringComparison.Ordinal);
        var acceptTls = Assert.Single(result.Problems, p => p.StartsWith(key + "AcceptTls: ", StringComparison.Ordinal));
        Assert.Contains("applies to Postgres and MySql listeners only", acceptTls, StringComparison.Ordinal);
        AssertOnlyKeys(result, key + "AllowedConnectPorts", key + "AcceptTls");
    }
}
