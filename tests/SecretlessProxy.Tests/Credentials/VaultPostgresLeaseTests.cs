using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// Vault dynamic database credentials end to end on a real PostgreSQL: the fake Vault's database
/// engine creates a real role for each lease and drops it on revoke or expiry, as Vault's
/// postgresql-database-plugin does. Unmodified clients (psql, Npgsql) hold no password and are
/// logged in as the leased role; what is asserted is the server's view (<c>current_user</c>,
/// <c>pg_roles</c>) and the client's error, and every proxy is leak-scanned for the leased
/// passwords, the Vault tokens and the workload token. The proxy's and Vault's clock is a
/// FakeTimeProvider, so TTLs of a minute pass at once.
/// </summary>
[Collection(PostgresServer.Collection)]
public sealed class VaultPostgresLeaseTests : IDisposable
{
    private const string Credential = "db-login";
    private const string ReadPath = "/v1/database/creds/orders";

    private readonly PostgresServer _pg;
    private readonly FakeVault _vault = new();
    private readonly TestConfig _config = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly VaultDatabasePlugin _plugin;
    private readonly string _workloadToken;

    public VaultPostgresLeaseTests(PostgresServer pg)
    {
        _pg = pg;
        _plugin = VaultDatabasePlugin.Postgres(pg);
        _workloadToken = VaultTests.WorkloadToken(_time.GetUtcNow());
        _vault.Login();
        _config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _config.SecretFile("workload-token", _workloadToken) });
        _config.PostgresListener("db", _pg.ServerName + ":" + _pg.Port, Credential, new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _pg.CaFile })
            .Credential(Credential, VaultTests.DynamicDefinition(_vault.Address))
            .Policy("orders-db", new JsonObject
            {
                ["Match"] = TestConfig.Match([_pg.ServerName], ports: [_pg.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _time);
        proxy.NeverEmit(_workloadToken, _pg.SuperuserPassword, _pg.ScramPassword);
        proxy.NeverEmit(_vault.Secrets);
        return proxy;
    }

    /// <summary>psql as the app runs it: the proxy's port, any user, no password; returns <c>current_user</c>.</summary>
    private static async Task<string> PsqlCurrentUserAsync(ProxyHarness proxy)
    {
        var port = proxy.App.GetListenerEndPoint("db").Port;
        var result = await ExternalClient.RunAsync(
            "/usr/bin/psql",
            ["-X", "-w", "-Atc", "select current_user || ' ' || count(*) from " + PostgresServer.Table, $"host=127.0.0.1 port={port} dbname={PostgresServer.Database} user=the-app sslmode=disable"],
            new Dictionary<string, string> { ["PGPASSWORD"] = string.Empty, ["PGCONNECT_TIMEOUT"] = "10" });
        Assert.True(result.ExitCode == 0, result.ToString());
        var parts = result.Output.Trim().Split(' ');
        Assert.Equal(PostgresServer.TableRows.ToString(), parts[1]);
        return parts[0];
    }

    private static string AppConnectionString(ProxyHarness proxy) =>
        $"Host=127.0.0.1;Port={proxy.App.GetListenerEndPoint("db").Port};Database={PostgresServer.Database};Username=the-app;Pooling=false;Timeout=15;SSL Mode=Disable;Gss Encryption Mode=Disable";

    private static async Task<string> NpgsqlCurrentUserAsync(ProxyHarness proxy)
    {
        await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select current_user", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    private async Task<IReadOnlyList<string>> RolesAsync() => await _plugin.ListUsers();

    private string CacheState(ProxyHarness proxy) => proxy.App.State.Cache.GetStatuses().Single(s => s.Name == Credential).State;

    [PostgresFact]
    public async Task The_app_logs_in_as_the_leased_role_which_is_renewed_then_replaced_near_its_max_ttl_and_never_used_dead()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 60, maxTtl: 150);
        await using var proxy = await StartAsync();

        // The first connection issues a lease: the role exists on the server and the app is logged in as it.
        var first = await PsqlCurrentUserAsync(proxy);
        Assert.Equal(Assert.Single(_vault.Usernames), first);
        Assert.Contains(first, await RolesAsync());
        Assert.StartsWith("v-jwt-orders-", first, StringComparison.Ordinal);

        // Past 80% of the TTL: the connection still gets the role, and the lease is renewed in the background.
        _time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(first, await NpgsqlCurrentUserAsync(proxy));
        await Poll.UntilAsync(() => _vault.RenewedLeases.Count == 1 && CacheState(proxy) == "valid", "the lease renewal");
        Assert.Equal((_vault.LeaseIds[0], 60), _vault.RenewedLeases[0]);

        // Past the first TTL, within the renewed one: Vault expired nothing, the role is still the app's.
        _time.Advance(TimeSpan.FromSeconds(15));
        await _vault.ExpireDueLeasesAsync(_plugin, _time);
        Assert.Empty(_vault.ExpiredLeases);
        Assert.Equal(first, await PsqlCurrentUserAsync(proxy));
        Assert.Single(_vault.Requests(ReadPath));

        // Near the max TTL (150 s) Vault grants 50 s of the 60 asked: a new lease and a new role are issued.
        _time.Advance(TimeSpan.FromSeconds(35));
        Assert.Equal(first, await NpgsqlCurrentUserAsync(proxy));
        await Poll.UntilAsync(() => _vault.Requests(ReadPath).Count == 2 && CacheState(proxy) == "valid", "the new lease after a short renewal");
        Assert.Equal((_vault.LeaseIds[0], 50), _vault.RenewedLeases[1]);
        var second = _vault.Usernames[1];
        Assert.NotEqual(first, second);
        Assert.Equal(second, await PsqlCurrentUserAsync(proxy));

        // The superseded lease runs out at its (short-renewed) end, 150 s, and Vault drops its role; the
        // app keeps working as the new one.
        _time.Advance(TimeSpan.FromSeconds(51));
        await _vault.ExpireDueLeasesAsync(_plugin, _time);
        Assert.Equal([_vault.LeaseIds[0]], _vault.ExpiredLeases);
        var roles = await RolesAsync();
        Assert.DoesNotContain(first, roles);
        Assert.Contains(second, roles);
        Assert.Equal(second, await NpgsqlCurrentUserAsync(proxy));
        Assert.Equal(2, _vault.Requests(ReadPath).Count);
    }

    [PostgresFact]
    public async Task A_lease_that_ran_out_while_the_app_was_idle_is_replaced_not_renewed_or_used_dead()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 60, maxTtl: 3600);
        await using var proxy = await StartAsync();
        var first = await PsqlCurrentUserAsync(proxy);

        // No connection in the refresh window: Vault lets the lease run out and drops the role.
        _time.Advance(TimeSpan.FromSeconds(61));
        await _vault.ExpireDueLeasesAsync(_plugin, _time);
        Assert.Equal([_vault.LeaseIds[0]], _vault.ExpiredLeases);
        Assert.DoesNotContain(first, await RolesAsync());

        // The next connection gets a new lease at once: no renewal of the dead one, no login as its role.
        var second = await NpgsqlCurrentUserAsync(proxy);
        Assert.Equal(_vault.Usernames[1], second);
        Assert.Empty(_vault.Requests("/v1/sys/leases/renew"));
        Assert.Equal(2, _vault.Requests(ReadPath).Count);
    }

    [PostgresFact]
    public async Task A_vault_outage_during_the_lease_keeps_the_app_on_its_role_until_the_lease_ends_then_says_why()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 60, maxTtl: 3600);
        _config.Section["Credentials"]![Credential]!["RetryAttempts"] = 0;
        await using var proxy = await StartAsync();
        var first = await PsqlCurrentUserAsync(proxy);

        var marker = "sealed-" + Guid.NewGuid().ToString("N");
        _vault.FailEverything(503, "Vault is sealed " + marker);

        // Renewal is due and fails (so does issuing anew): the lease is still alive, so the app still gets its role.
        _time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(first, await NpgsqlCurrentUserAsync(proxy));
        await Poll.UntilAsync(() => proxy.App.State.Cache.GetStatuses().Single(s => s.Name == Credential) is { State: "valid", LastError: not null }, "the failed renewal");
        Assert.Equal(first, await PsqlCurrentUserAsync(proxy));
        Assert.Contains(first, await RolesAsync());

        // Past the lease's end (less the expiry skew) the role is never used; the app is told why.
        _time.Advance(TimeSpan.FromSeconds(10));
        var error = await Assert.ThrowsAsync<PostgresException>(() => NpgsqlCurrentUserAsync(proxy));
        Assert.Equal("57P03", error.SqlState);
        Assert.Contains("sealed or unavailable (503)", error.MessageText);
        Assert.DoesNotContain(marker, error.MessageText, StringComparison.Ordinal);
        Assert.Single(_vault.Usernames);
    }

    [PostgresFact]
    public async Task A_lease_is_timed_from_the_request_so_a_slow_answer_never_makes_the_proxy_use_a_role_vault_dropped()
    {
        // Each answer takes 3 s to arrive, and the proxy keeps no expiry skew: a lease timed from its
        // answer would look alive 3 s after Vault dropped its role.
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 60, maxTtl: 3600, whileAnswering: () => _time.Advance(TimeSpan.FromSeconds(3)));
        _config.Section["Credentials"]![Credential]!["ExpirySkew"] = "00:00:00";
        var start = _time.GetUtcNow();
        await using var proxy = await StartAsync();
        var first = await PsqlCurrentUserAsync(proxy);
        Assert.Equal(start + TimeSpan.FromSeconds(60), proxy.App.State.Cache.GetStatuses().Single(s => s.Name == Credential).ExpiresAt);

        // Just past Vault's end of the lease (the app was idle through the refresh window): the role
        // is gone, and the connection logs in as a new lease's role instead of failing as the old one.
        _time.Advance(TimeSpan.FromSeconds(58));
        await _vault.ExpireDueLeasesAsync(_plugin, _time);
        Assert.DoesNotContain(first, await RolesAsync());
        var second = await NpgsqlCurrentUserAsync(proxy);
        Assert.Equal(_vault.Usernames[1], second);
    }

    [PostgresFact]
    public async Task An_admin_revoke_drops_the_role_at_once_and_the_next_connection_uses_a_new_one()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 600, maxTtl: 3600);
        var proxy = await StartAsync();
        string first, second;
        try
        {
            first = await PsqlCurrentUserAsync(proxy);
            var firstPassword = Assert.Single(_vault.Passwords);
            // The leased role works directly too (the test knows its password; the app never does).
            await using (var direct = new NpgsqlConnection(_pg.ConnectionString(first, firstPassword)))
            {
                await direct.OpenAsync();
            }

            var revoke = await proxy.AdminPostAsync("/credentials/" + Credential + "/revoke");
            Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);

            // By the time the operator has the answer, Vault has revoked the lease and the role is gone.
            Assert.Equal([_vault.LeaseIds[0]], _vault.RevokedLeases);
            Assert.DoesNotContain(first, await RolesAsync());
            await using (var direct = new NpgsqlConnection(_pg.ConnectionString(first, firstPassword)))
            {
                var refused = await Assert.ThrowsAsync<PostgresException>(() => direct.OpenAsync());
                Assert.Equal("28P01", refused.SqlState);
            }

            // The next connection gets a new lease and logs in as its role; the old lease was not renewed.
            second = await NpgsqlCurrentUserAsync(proxy);
            Assert.Equal(_vault.Usernames[1], second);
            Assert.NotEqual(first, second);
            Assert.Contains(second, await RolesAsync());
            Assert.Empty(_vault.RenewedLeases);
            Assert.Equal(2, _vault.Requests(ReadPath).Count);
        }
        finally
        {
            await proxy.DisposeAsync();
        }

        // Stopping the proxy gives the current lease back: its role is dropped too.
        Assert.Equal(_vault.LeaseIds, _vault.RevokedLeases);
        var roles = await RolesAsync();
        Assert.DoesNotContain(first, roles);
        Assert.DoesNotContain(second, roles);
    }

    [PostgresFact]
    public async Task Vault_answering_garbage_or_down_gives_the_app_a_postgres_error_that_names_the_failure_and_leaks_nothing()
    {
        _vault.DatabaseEngine("database/creds/orders", _plugin, _time, ttl: 600, maxTtl: 3600);
        _config.Section["Credentials"]![Credential]!["RetryAttempts"] = 0;
        await using var proxy = await StartAsync();
        var marker = "gateway-" + Guid.NewGuid().ToString("N");

        // A gateway's HTML page where Vault's JSON should be.
        _vault.AnswerGarbage(ReadPath, "<html><body>502 upstream " + marker + "</body></html>");
        var garbage = await Assert.ThrowsAsync<PostgresException>(() => NpgsqlCurrentUserAsync(proxy));
        Assert.Equal("57P03", garbage.SqlState);
        Assert.Contains("policy 'orders-db' needs credential '" + Credential + "', which is unavailable", garbage.MessageText);
        Assert.Contains("issuing credentials from database/creds/orders: the answer is not JSON", garbage.MessageText);
        Assert.DoesNotContain(marker, garbage.MessageText, StringComparison.Ordinal);

        // JSON, but not a database engine's answer.
        _vault.AnswerGarbage(ReadPath, "{\"data\":{\"value\":\"" + marker + "\"},\"lease_id\":\"x\"}", "application/json");
        _time.Advance(TimeSpan.FromMinutes(5));
        var shape = await Assert.ThrowsAsync<PostgresException>(() => NpgsqlCurrentUserAsync(proxy));
        Assert.Equal("57P03", shape.SqlState);
        Assert.Contains("the answer has no data.username and data.password", shape.MessageText);
        Assert.DoesNotContain(marker, shape.MessageText, StringComparison.Ordinal);

        // Vault down: psql gets the same kind of error, saying Vault is unreachable.
        _vault.Server.Stop();
        _time.Advance(TimeSpan.FromMinutes(5));
        var port = proxy.App.GetListenerEndPoint("db").Port;
        var down = await ExternalClient.RunAsync("/usr/bin/psql", ["-X", "-w", "-Atc", "select 1", $"host=127.0.0.1 port={port} dbname=orders user=the-app sslmode=disable"], new Dictionary<string, string> { ["PGPASSWORD"] = string.Empty });
        Assert.NotEqual(0, down.ExitCode);
        Assert.Contains("which is unavailable", down.Error);
        Assert.Contains("unreachable", down.Error);

        // No lease was issued, no role created; nothing Vault or the identity handed out was emitted.
        Assert.Empty(_vault.LiveLeases);
        await proxy.AssertNoSecretEmittedAsync();
        foreach (var item in await proxy.EmittedAsync())
        {
            Assert.DoesNotContain(marker, item, StringComparison.Ordinal);
        }
    }

    public void Dispose()
    {
        _vault.Dispose();
        _config.Dispose();
    }
}
