using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using MySqlConnector;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// Vault dynamic database credentials end to end on a real MariaDB through the MySql listener: the
/// fake Vault's database engine creates a real user per lease and drops it on revoke or expiry, as
/// Vault's mysql-database-plugin does. Unmodified clients (the mariadb CLI, MySqlConnector) hold no
/// password; the server's <c>CURRENT_USER()</c> and <c>mysql.user</c> are what is asserted, and the
/// proxy is leak-scanned for the leased passwords, the Vault tokens and the workload token.
/// </summary>
[Collection(MariaDbServer.Collection)]
public sealed class VaultMariaDbLeaseTests : IDisposable
{
    private const string Credential = "db-login";
    private const string ReadPath = "/v1/database/creds/orders";

    private readonly MariaDbServer _db;
    private readonly FakeVault _vault = new();
    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly VaultDatabasePlugin _plugin;
    private readonly string _workloadToken;

    public VaultMariaDbLeaseTests(MariaDbServer db)
    {
        _db = db;
        _plugin = VaultDatabasePlugin.MariaDb(db);
        _workloadToken = VaultTests.WorkloadToken(_time.GetUtcNow());
        _vault.Login();
        _config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _config.SecretFile("workload-token", _workloadToken) });
        _config.Section["Listeners"]!["db"] = new JsonObject
        {
            ["Mode"] = "MySql",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = _db.ServerName + ":" + _db.Port,
            ["Credential"] = Credential,
            ["Tls"] = new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _db.CaFile },
        };
        _config.Credential(Credential, VaultTests.DynamicDefinition(_vault.Address))
            .Policy("orders-db", new JsonObject
            {
                ["Match"] = TestConfig.Match([_db.ServerName], ports: [_db.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        proxy.NeverEmit(_workloadToken, _db.NativePassword, _db.Ed25519Password, _db.RotatingPassword);
        proxy.NeverEmit(_vault.Secrets);
        return proxy;
    }

    private static int Port(ProxyHarness proxy) => proxy.App.GetListenerEndPoint("db").Port;

    /// <summary>The mariadb CLI as the app runs it: any user, no password; returns the user part of <c>CURRENT_USER()</c>.</summary>
    private static async Task<string> CliCurrentUserAsync(ProxyHarness proxy)
    {
        var result = await ExternalClient.RunAsync(MariaDbServer.Client,
            ["--no-defaults", "-h", "127.0.0.1", "--protocol=TCP", "-P", Port(proxy).ToString(), "-u", "the-app", "--skip-password", "--skip-ssl", "--batch", "--skip-column-names",
             MariaDbServer.Database, "-e", $"select current_user(), count(*) from {MariaDbServer.Table}"]);
        Assert.True(result.ExitCode == 0, result.ToString());
        var columns = result.Output.Trim().Split('\t');
        Assert.Equal(MariaDbServer.TableRows.ToString(), columns[1]);
        Assert.EndsWith("@%", columns[0], StringComparison.Ordinal);
        return columns[0][..^2];
    }

    private static async Task<string> ConnectorCurrentUserAsync(ProxyHarness proxy)
    {
        await using var connection = new MySqlConnection($"Server=127.0.0.1;Port={Port(proxy)};User ID=the-app;Database={MariaDbServer.Database};Pooling=false;Connection Timeout=15;SslMode=None");
        await connection.OpenAsync();
        await using var command = new MySqlCommand("select current_user()", connection);
        var user = (string)(await command.ExecuteScalarAsync())!;
        return user[..user.IndexOf('@', StringComparison.Ordinal)];
    }

    private string CacheState(ProxyHarness proxy) => proxy.App.State.Cache.GetStatuses().Single(s => s.Name == Credential).State;

    [MariaDbFact]
    public async Task The_app_logs_in_as_the_leased_user_which_is_renewed_then_replaced_near_its_max_ttl_and_never_used_dead()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 60, maxTtl: 150);
        await using var proxy = await StartAsync();

        var first = await CliCurrentUserAsync(proxy);
        Assert.Equal(Assert.Single(_vault.Usernames), first);
        Assert.Contains(first, await _plugin.ListUsers());

        // Past 80% of the TTL: renewed in the background, the same user kept.
        _time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(first, await ConnectorCurrentUserAsync(proxy));
        await Poll.UntilAsync(() => _vault.RenewedLeases.Count == 1 && CacheState(proxy) == "valid", "the lease renewal");
        _time.Advance(TimeSpan.FromSeconds(15));
        await _vault.ExpireDueLeasesAsync(_plugin, _time);
        Assert.Equal(first, await CliCurrentUserAsync(proxy));

        // Near the max TTL Vault grants less than asked: a new lease, a new user.
        _time.Advance(TimeSpan.FromSeconds(35));
        Assert.Equal(first, await ConnectorCurrentUserAsync(proxy));
        await Poll.UntilAsync(() => _vault.Requests(ReadPath).Count == 2 && CacheState(proxy) == "valid", "the new lease after a short renewal");
        var second = _vault.Usernames[1];
        Assert.Equal(second, await CliCurrentUserAsync(proxy));

        // The superseded lease ends at its max TTL; Vault drops its user and the app goes on as the new one.
        _time.Advance(TimeSpan.FromSeconds(51));
        await _vault.ExpireDueLeasesAsync(_plugin, _time);
        Assert.Equal([_vault.LeaseIds[0]], _vault.ExpiredLeases);
        var users = await _plugin.ListUsers();
        Assert.DoesNotContain(first, users);
        Assert.Contains(second, users);
        Assert.Equal(second, await ConnectorCurrentUserAsync(proxy));
    }

    [MariaDbFact]
    public async Task An_admin_revoke_drops_the_user_the_next_connection_uses_a_new_one_and_vault_down_is_a_mysql_error()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 600, maxTtl: 3600);
        _config.Section["Credentials"]![Credential]!["RetryAttempts"] = 0;
        var proxy = await StartAsync();
        string first, second;
        try
        {
            first = await ConnectorCurrentUserAsync(proxy);
            var firstPassword = Assert.Single(_vault.Passwords);

            Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/credentials/" + Credential + "/revoke")).StatusCode);
            Assert.Equal([_vault.LeaseIds[0]], _vault.RevokedLeases);
            Assert.DoesNotContain(first, await _plugin.ListUsers());
            // The old user no longer logs in on the server itself (the CLI: for an unknown user MariaDB
            // answers with an auth switch to a plugin of its choosing, which MySqlConnector lacks here).
            var direct = await ExternalClient.RunAsync(MariaDbServer.Client,
                ["--no-defaults", "-h", _db.Host, "--protocol=TCP", "-P", _db.Port.ToString(), "-u", first, "--password=" + firstPassword, "--skip-ssl", "-e", "select 1"]);
            Assert.NotEqual(0, direct.ExitCode);
            Assert.Contains("ERROR 1045", direct.Error);

            second = await CliCurrentUserAsync(proxy);
            Assert.Equal(_vault.Usernames[1], second);
            Assert.NotEqual(first, second);
            Assert.Contains(second, await _plugin.ListUsers());

            // Vault down, once the cached lease is revoked: the app gets a MySQL error that says why.
            Assert.Equal(HttpStatusCode.OK, (await proxy.AdminPostAsync("/credentials/" + Credential + "/revoke")).StatusCode);
            Assert.DoesNotContain(second, await _plugin.ListUsers());
            _vault.Server.Stop();
            var error = await Assert.ThrowsAsync<MySqlException>(() => ConnectorCurrentUserAsync(proxy));
            Assert.Equal(1105, error.Number);  // ER_UNKNOWN_ERROR with the reason: a client-range code (2013) is shown by libmariadb as a malformed packet
            Assert.Contains("policy 'orders-db' needs credential '" + Credential + "', which is unavailable", error.Message);
            Assert.Contains("unreachable", error.Message);
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
