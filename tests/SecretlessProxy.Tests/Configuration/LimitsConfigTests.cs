using System.Text.Json.Nodes;
using SecretlessProxy.Configuration;
using Xunit;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary><c>Limits:SigningBufferBytes</c>: validated by its key, bound into the snapshot with a default.</summary>
public sealed class LimitsConfigTests : IDisposable
{
    private const string Key = Root + ":Limits:SigningBufferBytes";

    private readonly BaselineConfig _config = new();

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task A_signing_buffer_that_is_not_positive_is_named(long value)
    {
        _config.Section["Limits"] = new JsonObject { ["SigningBufferBytes"] = value };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key, string.Empty);
        AssertOnlyKeys(result, Key);
    }

    [Fact]
    public async Task A_misspelt_limits_key_is_named()
    {
        _config.Section["Limits"] = new JsonObject { ["SigningBufferByte"] = 1024 };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Limits:SigningBufferByte", "is not a known key");
        AssertOnlyKeys(result, Root + ":Limits:SigningBufferByte");
    }

    [Fact]
    public async Task The_signing_buffer_is_bound_into_the_snapshot_with_a_default_of_64_MiB()
    {
        using var tokenClient = new HttpMessageInvoker(new SocketsHttpHandler());
        var loader = new ConfigLoader(TimeProvider.System, tokenClient);

        var defaulted = await loader.LoadAsync(_config.Write(), includeEnvironment: false, checkFiles: false);
        _config.Section["Limits"] = new JsonObject { ["SigningBufferBytes"] = 1048576 };
        var set = await loader.LoadAsync(_config.Write(), includeEnvironment: false, checkFiles: false);

        Assert.Equal(64L * 1024 * 1024, defaulted.Snapshot!.SigningBufferBytes);
        Assert.Equal(1048576, set.Snapshot!.SigningBufferBytes);
    }

    public void Dispose() => _config.Dispose();
}
