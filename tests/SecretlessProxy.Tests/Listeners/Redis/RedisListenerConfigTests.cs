using System.Text.Json.Nodes;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Listeners.Redis;

/// <summary>What <c>validate</c> says about a Redis listener: the shared database keys, and AcceptTls refused in the kind's words.</summary>
public sealed class RedisListenerConfigTests
{
    private static async Task<CliResult> ValidateAsync(Action<JsonObject> change)
    {
        using var config = new TestConfig();
        var listener = new JsonObject
        {
            ["Mode"] = "Redis",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = "cache.internal",
            ["Credential"] = "cache-login",
        };
        change(listener);
        config.Section["Listeners"]!["cache"] = listener;
        config.Credential("cache-login", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("pw", "unused"), ["Username"] = "app" })
            .Policy("cache", new JsonObject
            {
                ["Match"] = TestConfig.Match(["cache.internal"], ports: [6379]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        return await CliRunner.ValidateAsync(config.Write());
    }

    [Fact]
    public async Task A_redis_listener_validates_with_the_default_port()
    {
        var result = await ValidateAsync(_ => { });
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task AcceptTls_is_refused_once_in_the_redis_kinds_words()
    {
        var result = await ValidateAsync(l => l["AcceptTls"] = true);
        var key = Root + ":Listeners:cache:";
        AssertProblem(result, key + "AcceptTls", "is not supported by a Redis listener");
        AssertOnlyKeys(result, key + "AcceptTls");
    }

    [Fact]
    public async Task A_url_with_user_info_and_an_unknown_tls_mode_are_reported_with_their_keys()
    {
        var result = await ValidateAsync(l =>
        {
            l["Upstream"] = "redis://user:pw@cache.internal:6379";
            l["Tls"] = new JsonObject { ["Mode"] = "Sometimes" };
        });
        var key = Root + ":Listeners:cache:";
        AssertProblem(result, key + "Upstream", "must be host:port");
        AssertProblem(result, key + "Tls:Mode", "'Sometimes' is not a TLS mode");
        Assert.DoesNotContain("user:pw", result.Output + result.Error);
    }
}
