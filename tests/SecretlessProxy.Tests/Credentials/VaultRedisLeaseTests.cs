using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using SecretlessProxy.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// Vault dynamic credentials end to end on a real redis-server through the Redis listener: the fake
/// Vault's database engine creates a real ACL user per lease and deletes it on revoke or expiry, as
/// Vault's redis-database-plugin does. Unmodified clients (redis-cli, StackExchange.Redis) hold no
/// password; <c>ACL WHOAMI</c> and <c>ACL USERS</c> are what is asserted, and the proxy is
/// leak-scanned for the leased passwords, the Vault tokens and the workload token.
/// </summary>
[Collection(RedisServer.Collection)]
public sealed class VaultRedisLeaseTests : IDisposable
{
    private const string Credential = "cache-login";
    private const string ReadPath = "/v1/database/creds/orders";

    private readonly RedisServer _redis;
    private readonly FakeVault _vault = new();
    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly VaultDatabasePlugin _plugin;
    private readonly string _workloadToken;

    public VaultRedisLeaseTests(RedisServer redis)
    {
        _redis = redis;
        _plugin = VaultDatabasePlugin.Redis(redis);
        _workloadToken = VaultTests.WorkloadToken(_time.GetUtcNow());
        _vault.Login();
        _config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _config.SecretFile("workload-token", _workloadToken) });
        _config.Section["Listeners"]!["cache"] = new JsonObject
        {
            ["Mode"] = "Redis",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = _redis.ServerName + ":" + _redis.TlsPort,
            ["Credential"] = Credential,
            ["Tls"] = new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _redis.CaFile },
        };
        _config.Credential(Credential, VaultTests.DynamicDefinition(_vault.Address))
            .Policy("cache", new JsonObject
            {
                ["Match"] = TestConfig.Match([_redis.ServerName], ports: [_redis.TlsPort]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        proxy.NeverEmit(_workloadToken, _redis.AdminPassword, _redis.AppPassword, _redis.ReadPassword);
        proxy.NeverEmit(_vault.Secrets);
        return proxy;
    }

    private static int Port(ProxyHarness proxy) => proxy.App.GetListenerEndPoint("cache").Port;

    /// <summary>redis-cli as the app runs it, with no password: one command, its output.</summary>
    private static async Task<string> CliAsync(ProxyHarness proxy, params string[] command)
    {
        var result = await ExternalClient.RunAsync(RedisServer.CliBinary, ["-h", "127.0.0.1", "-p", Port(proxy).ToString(), "--no-auth-warning", .. command]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Output.Trim();
    }

    private static async Task<string> StackExchangeWhoAmIAsync(ProxyHarness proxy)
    {
        await using var mux = await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
        {
            EndPoints = { new IPEndPoint(IPAddress.Loopback, Port(proxy)) },
            AbortOnConnectFail = true,
            ConnectTimeout = 15000,
            SyncTimeout = 15000,
            AsyncTimeout = 15000,
            ConnectRetry = 0,
        });
        return (string)(await mux.GetDatabase().ExecuteAsync("ACL", "WHOAMI"))!;
    }

    private string CacheState(ProxyHarness proxy) => proxy.App.State.Cache.GetStatuses().Single(s => s.Name == Credential).State;

    [RedisFact]
    public async Task The_app_works_as_the_leased_acl_user_which_is_renewed_then_replaced_near_its_max_ttl_and_never_used_dead()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 60, maxTtl: 150);
        await using var proxy = await StartAsync();

        var first = await CliAsync(proxy, "ACL", "WHOAMI");
        Assert.Equal(Assert.Single(_vault.Usernames), first);
        Assert.Contains(first, await _plugin.ListUsers());
        Assert.Equal("OK", await CliAsync(proxy, "SET", "vault:lease", "works"));

        _time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(first, await StackExchangeWhoAmIAsync(proxy));
        await Poll.UntilAsync(() => _vault.RenewedLeases.Count == 1 && CacheState(proxy) == "valid", "the lease renewal");
        _time.Advance(TimeSpan.FromSeconds(15));
        await _vault.ExpireDueLeasesAsync(_plugin, _time);
        Assert.Equal(first, await CliAsync(proxy, "ACL", "WHOAMI"));

        _time.Advance(TimeSpan.FromSeconds(35));
        Assert.Equal(first, await CliAsync(proxy, "ACL", "WHOAMI"));
        await Poll.UntilAsync(() => _vault.Requests(ReadPath).Count == 2 && CacheState(proxy) == "valid", "the new lease after a short renewal");
        var second = _vault.Usernames[1];
        Assert.Equal(second, await StackExchangeWhoAmIAsync(proxy));

        _time.Advance(TimeSpan.FromSeconds(51));
        await _vault.ExpireDueLeasesAsync(_plugin, _time);
        Assert.Equal([_vault.LeaseIds[0]], _vault.ExpiredLeases);
        var users = await _plugin.ListUsers();
        Assert.DoesNotContain(first, users);
        Assert.Contains(second, users);
        Assert.Equal(second, await CliAsync(proxy, "ACL", "WHOAMI"));
        Assert.Equal("works", await CliAsync(proxy, "GET", "vault:lease"));
    }

    [RedisFact]
    public async Task An_admin_revoke_deletes_the_acl_user_the_next_connection_uses_a_new_one_and_vault_garbage_is_a_redis_error()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 600, maxTtl: 3600);
        _config.Section["Credentials"]![Credential]!["RetryAttempts"] = 0;
        var proxy = await StartAsync();
        string first, second;
        try
        {
            first = await CliAsync(proxy, "ACL", "WHOAMI");

            Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/credentials/" + Credential + "/revoke")).StatusCode);
            Assert.Equal([_vault.LeaseIds[0]], _vault.RevokedLeases);
            Assert.DoesNotContain(first, await _plugin.ListUsers());
            // The old user no longer logs in on the server itself.
            var direct = await ExternalClient.RunAsync(RedisServer.CliBinary, ["-h", _redis.Host, "-p", _redis.Port.ToString(), "--user", first, "--pass", _vault.Passwords[0], "--no-auth-warning", "PING"]);
            Assert.Contains("WRONGPASS", direct.Output + direct.Error);

            second = await StackExchangeWhoAmIAsync(proxy);
            Assert.Equal(_vault.Usernames[1], second);
            Assert.NotEqual(first, second);
            Assert.Contains(second, await _plugin.ListUsers());

            // Revoked again, and Vault now answers an HTML page: redis-cli gets an ERR saying so, and no user is made.
            Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/credentials/" + Credential + "/revoke")).StatusCode);
            var marker = "gateway-" + Guid.NewGuid().ToString("N");
            _vault.AnswerGarbage(ReadPath, "<html>" + marker + "</html>");
            var refused = await CliAsync(proxy, "ACL", "WHOAMI");
            Assert.StartsWith("ERR secretless-proxy: policy 'cache' needs credential '" + Credential + "', which is unavailable", refused, StringComparison.Ordinal);
            Assert.Contains("the answer is not JSON", refused);
            Assert.DoesNotContain(marker, refused, StringComparison.Ordinal);
            Assert.Empty(_vault.LiveLeases);
            await proxy.AssertNoSecretEmittedAsync();
        }
        finally
        {
            await proxy.DisposeAsync();
        }

        var users = await _plugin.ListUsers();
        Assert.DoesNotContain(first, users);
        Assert.DoesNotContain(second, users);
        Assert.Equal(_vault.LeaseIds, _vault.RevokedLeases);
    }

    public void Dispose()
    {
        _vault.Dispose();
        _config.Dispose();
    }
}
