using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Runtime;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// <c>Listeners:&lt;name&gt;:HandshakeTimeout</c> and <c>MaxConnections</c>: each mistake is named by
/// its key, and the values reach the snapshot of every listener kind (defaults included).
/// </summary>
public sealed class ListenerLimitsConfigTests : IDisposable
{
    private const string Key = Root + ":Listeners:payments";

    private readonly BaselineConfig _config = new();

    [Theory]
    [InlineData("00:00:00", "must be a positive duration")]
    [InlineData("-00:00:05", "")]
    [InlineData("00:05:01", "must be at most 00:05:00")]
    [InlineData("1.00:00:00", "must be at most 00:05:00")]
    public async Task A_handshake_timeout_that_is_not_positive_or_too_long_is_named(string value, string fragment)
    {
        _config.Listener("payments")["HandshakeTimeout"] = value;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key + ":HandshakeTimeout", fragment);
        AssertOnlyKeys(result, Key + ":HandshakeTimeout");
    }

    [Fact]
    public async Task A_handshake_timeout_that_is_not_a_duration_is_named_by_the_schema()
    {
        _config.Listener("payments")["HandshakeTimeout"] = "10s";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key + ":HandshakeTimeout", string.Empty);
        // The binder's own conversion failure comes too; it is filed under the section but names the key.
        Assert.All(result.Problems.Where(p => !p.StartsWith(Key + ":HandshakeTimeout: ", StringComparison.Ordinal)), p => Assert.Contains("'" + Key + ":HandshakeTimeout'", p, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1_000_001)]
    public async Task A_connection_cap_out_of_range_is_named(int value)
    {
        _config.Listener("payments")["MaxConnections"] = value;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key + ":MaxConnections", string.Empty);
        Assert.Contains(result.Problems, p => p.StartsWith(Key + ":MaxConnections: " + value + " is not between 1 and 1000000", StringComparison.Ordinal));
        AssertOnlyKeys(result, Key + ":MaxConnections");
    }

    [Fact]
    public async Task A_connection_cap_that_is_not_a_number_is_named_by_the_schema()
    {
        _config.Listener("payments")["MaxConnections"] = "many";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key + ":MaxConnections", string.Empty);
        Assert.All(result.Problems.Where(p => !p.StartsWith(Key + ":MaxConnections: ", StringComparison.Ordinal)), p => Assert.Contains("'" + Key + ":MaxConnections'", p, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_misspelt_limit_key_is_named()
    {
        _config.Listener("payments")["MaxConnection"] = 10;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key + ":MaxConnection", "is not a known key");
        AssertOnlyKeys(result, Key + ":MaxConnection");
    }

    [Fact]
    public async Task Every_listener_kind_gets_its_limits_or_the_defaults()
    {
        var files = _config.Files;
        files.ForwardListener("egress", [443])
            .PostgresListener("orders-db", "db.internal:5432", "db-login")
            .Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = files.SecretFile("db-password", "p"), ["Username"] = "orders" })
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(files.Directory, "ca") });
        files.Section["Listeners"]!["outbound"] = new JsonObject { ["Mode"] = "Transparent", ["Url"] = "tcp://127.0.0.1:0" };
        using var tokenClient = new HttpMessageInvoker(new SocketsHttpHandler());
        var loader = new ConfigLoader(TimeProvider.System, tokenClient);

        var defaulted = await loader.LoadAsync(_config.Write(), includeEnvironment: false, checkFiles: false);
        foreach (var name in new[] { "payments", "egress", "orders-db", "outbound" })
        {
            _config.Section["Listeners"]![name]!["HandshakeTimeout"] = "00:00:03";
            _config.Section["Listeners"]![name]!["MaxConnections"] = 7;
        }

        var set = await loader.LoadAsync(_config.Write(), includeEnvironment: false, checkFiles: false);

        Assert.True(defaulted.IsValid, string.Join("\n", defaulted.Errors));
        Assert.True(set.IsValid, string.Join("\n", set.Errors));
        Assert.Equal(TimeSpan.FromSeconds(10), ListenerLimits.DefaultHandshakeTimeout);
        Assert.Equal(1024, ListenerLimits.DefaultMaxConnections);
        Assert.All(defaulted.Snapshot!.Listeners.Values, l =>
        {
            Assert.Equal(ListenerLimits.DefaultHandshakeTimeout, l.Limits.HandshakeTimeout);
            Assert.Equal(ListenerLimits.DefaultMaxConnections, l.Limits.MaxConnections);
        });
        Assert.Equal(4, set.Snapshot!.Listeners.Count);
        Assert.All(set.Snapshot.Listeners.Values, l =>
        {
            Assert.Equal(TimeSpan.FromSeconds(3), l.Limits.HandshakeTimeout);
            Assert.Equal(7, l.Limits.MaxConnections);
        });
        // The Postgres listener's login deadline is the same setting, not a second one.
        Assert.Equal(TimeSpan.FromSeconds(3), Assert.IsType<DatabaseListenerSettings>(set.Snapshot.Listeners["orders-db"].Settings).HandshakeTimeout);
    }

    public void Dispose() => _config.Dispose();
}
