using System.Text.Json.Nodes;
using SecretlessProxy.Certificates;
using SecretlessProxy.Configuration;
using Xunit;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary><c>LocalCa:MaxLeafCertificates</c>: a value out of range is named by its key; the value (or the default) reaches the snapshot.</summary>
public sealed class LocalCaConfigTests : IDisposable
{
    private const string Key = Root + ":LocalCa:MaxLeafCertificates";

    private readonly BaselineConfig _config = new();

    public LocalCaConfigTests()
    {
        _config.Files.ForwardListener("egress", [443]);
    }

    private JsonObject LocalCa(JsonNode? maxLeaves)
    {
        var ca = new JsonObject { ["Directory"] = Path.Combine(_config.Files.Directory, "ca") };
        if (maxLeaves is not null)
        {
            ca["MaxLeafCertificates"] = maxLeaves;
        }

        _config.Files.Set("LocalCa", ca);
        return ca;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1_000_001)]
    public async Task A_leaf_cache_bound_out_of_range_is_named(int value)
    {
        LocalCa(value);

        var result = await _config.ValidateAsync();

        Assert.Contains(result.Problems, p => p.StartsWith(Key + ": " + value + " is not between 1 and 1000000", StringComparison.Ordinal));
        AssertOnlyKeys(result, Key);
    }

    [Fact]
    public async Task A_leaf_cache_bound_that_is_not_a_number_is_named_by_the_schema()
    {
        LocalCa("lots");

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key, string.Empty);
    }

    [Fact]
    public async Task The_bound_or_its_default_reaches_the_snapshot()
    {
        using var tokenClient = new HttpMessageInvoker(new SocketsHttpHandler());
        var loader = new ConfigLoader(TimeProvider.System, tokenClient);

        LocalCa(null);
        var defaulted = await loader.LoadAsync(_config.Write(), includeEnvironment: false, checkFiles: false);
        LocalCa(8);
        var set = await loader.LoadAsync(_config.Write(), includeEnvironment: false, checkFiles: false);

        Assert.True(defaulted.IsValid, string.Join("\n", defaulted.Errors));
        Assert.True(set.IsValid, string.Join("\n", set.Errors));
        Assert.Equal(1024, LeafCertificateCache.DefaultMaxCertificates);
        Assert.Equal(LeafCertificateCache.DefaultMaxCertificates, defaulted.Snapshot!.LocalCa!.MaxLeafCertificates);
        Assert.Equal(8, set.Snapshot!.LocalCa!.MaxLeafCertificates);
    }

    public void Dispose() => _config.Dispose();
}
