using Xunit;
using Xunit.Abstractions;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>The Redis test server itself: ACL users log in over plaintext and verified TLS; without a login nothing runs.</summary>
[Collection(RedisServer.Collection)]
public sealed class RedisServerTests
{
    private readonly RedisServer _redis;

    public RedisServerTests(RedisServer redis, ITestOutputHelper output)
    {
        _redis = redis;
        if (redis.Available)
        {
            output.WriteLine($"Redis at {redis.Host}:{redis.Port} (TLS {redis.TlsPort}), started in {redis.StartupTime.TotalSeconds:F1} s");
        }
    }

    [RedisFact]
    public async Task The_app_user_logs_in_over_verified_tls_and_an_unauthenticated_command_fails()
    {
        var tls = await ExternalClient.RunAsync(RedisServer.CliBinary, ["-h", _redis.ServerName, "-p", _redis.TlsPort.ToString(), "--tls", "--cacert", _redis.CaFile, "--user", RedisServer.AppUser, "--pass", _redis.AppPassword, "--no-auth-warning", "ACL", "WHOAMI"]);
        Assert.True(tls.ExitCode == 0, tls.ToString());
        Assert.Equal(RedisServer.AppUser, tls.Output.Trim());

        var anonymous = await ExternalClient.RunAsync(RedisServer.CliBinary, ["-h", _redis.Host, "-p", _redis.Port.ToString(), "PING"]);
        Assert.Contains("NOAUTH", anonymous.Output + anonymous.Error);

        Assert.Equal("PONG", await _redis.AdminAsync("PING"));
    }

    [RedisFact]
    public async Task The_read_user_cannot_write()
    {
        var write = await ExternalClient.RunAsync(RedisServer.CliBinary, ["-h", _redis.Host, "-p", _redis.Port.ToString(), "--user", RedisServer.ReadUser, "--pass", _redis.ReadPassword, "--no-auth-warning", "SET", "k", "v"]);
        Assert.Contains("NOPERM", write.Output + write.Error);
    }
}
