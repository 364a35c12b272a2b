using Xunit;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// Issue 19: <c>RefreshJitter</c>, <c>SpreadFirstRefresh</c> and <c>PrefetchWithin</c> as <c>validate</c>
/// reports them: a window that leaves the lifetime, or an empty prefetch window, is named by its key
/// path; a RefreshAt near 1 given alone stays valid (the default jitter shrinks to fit).
/// </summary>
public sealed class RefreshSpreadingConfigTests : IDisposable
{
    private const string Key = "SecretlessProxy:Credentials:payments-token";

    private readonly BaselineConfig _config = new();

    [Theory]
    [InlineData(0.8, 0.3)]
    [InlineData(0.2, 0.2)]
    [InlineData(0.9, 0.1)]
    public async Task A_jitter_that_leaves_the_lifetime_is_reported_at_its_key(double refreshAt, double jitter)
    {
        _config.Credential("payments-token")["RefreshAt"] = refreshAt;
        _config.Credential("payments-token")["RefreshJitter"] = jitter;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key + ":RefreshJitter", "keep RefreshAt ± RefreshJitter between 0 and 1");
        AssertOnlyKeys(result, Key + ":RefreshJitter");
    }

    [Theory]
    [InlineData(0.95)]
    [InlineData(0.05)]
    public async Task A_RefreshAt_near_either_end_given_alone_is_valid(double refreshAt)
    {
        _config.Credential("payments-token")["RefreshAt"] = refreshAt;

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task The_spreading_keys_within_range_are_valid()
    {
        _config.Credential("payments-token")["RefreshJitter"] = 0.15;
        _config.Credential("payments-token")["SpreadFirstRefresh"] = false;
        _config.Credential("payments-token")["PrefetchWithin"] = "00:01:00";

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task An_empty_prefetch_window_is_reported_at_its_key()
    {
        _config.Credential("payments-token")["PrefetchWithin"] = "00:00:00";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Key + ":PrefetchWithin", string.Empty);
        AssertOnlyKeys(result, Key + ":PrefetchWithin");
    }

    public void Dispose() => _config.Dispose();
}
