using Npgsql;
using Xunit;
using Xunit.Abstractions;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>The PostgreSQL test server itself: real clients reach it with each password method, over verified TLS.</summary>
[Collection(PostgresServer.Collection)]
public sealed class PostgresServerTests
{
    private readonly PostgresServer _pg;

    public PostgresServerTests(PostgresServer pg, ITestOutputHelper output)
    {
        _pg = pg;
        if (pg.Available)
        {
            output.WriteLine($"PostgreSQL at {pg.Host}:{pg.Port} from {pg.BinDirectory}, started in {pg.StartupTime.TotalSeconds:F1} s");
        }
    }

    [PostgresFact]
    public async Task Npgsql_logs_in_with_scram_over_verified_tls_and_reads_the_table()
    {
        await using var connection = new NpgsqlConnection(_pg.ConnectionString(PostgresServer.ScramUser, _pg.ScramPassword));
        await connection.OpenAsync();
        await using var count = new NpgsqlCommand($"select count(*) from {PostgresServer.Table}", connection);
        Assert.Equal(PostgresServer.TableRows, (long)(await count.ExecuteScalarAsync())!);
        await using var ssl = new NpgsqlCommand("select ssl from pg_stat_ssl where pid = pg_backend_pid()", connection);
        Assert.True((bool)(await ssl.ExecuteScalarAsync())!);
        Assert.StartsWith("SCRAM-SHA-256$", await _pg.ExecAsSuperuserAsync($"select rolpassword from pg_authid where rolname = '{PostgresServer.ScramUser}'"));
    }

    [PostgresFact]
    public async Task Md5_user_logs_in_over_tls_and_cleartext_user_without_tls()
    {
        Assert.StartsWith("md5", await _pg.ExecAsSuperuserAsync($"select rolpassword from pg_authid where rolname = '{PostgresServer.Md5User}'"));
        await using (var md5 = new NpgsqlConnection(_pg.ConnectionString(PostgresServer.Md5User, _pg.Md5Password)))
        {
            await md5.OpenAsync();
            await using var command = new NpgsqlCommand($"select sum(quantity) from {PostgresServer.Table}", md5);
            Assert.Equal(15L, (long)(await command.ExecuteScalarAsync())!);
        }

        await using var clear = new NpgsqlConnection(_pg.ConnectionString(PostgresServer.CleartextUser, _pg.CleartextPassword, tls: false));
        await clear.OpenAsync();
        await using var plain = new NpgsqlCommand("select ssl from pg_stat_ssl where pid = pg_backend_pid()", clear);
        Assert.False((bool)(await plain.ExecuteScalarAsync())!);
    }

    [PostgresFact]
    public async Task Real_psql_client_verifies_the_server_name_and_runs_a_query()
    {
        var result = await ExternalClient.RunAsync("/usr/bin/psql",
            ["-X", "-Atc", $"select sku from {PostgresServer.Table} order by id",
             $"host={_pg.ServerName} hostaddr={_pg.Host} port={_pg.Port} dbname={PostgresServer.Database} user={PostgresServer.ScramUser} sslmode=verify-full sslrootcert={_pg.CaFile}"],
            new Dictionary<string, string> { ["PGPASSWORD"] = _pg.ScramPassword });
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("apple\npear\nplum", result.Output.TrimEnd('\n'));
    }

    [PostgresFact]
    public async Task A_wrong_password_is_28P01_and_a_rotated_password_replaces_the_old_one()
    {
        var wrong = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var connection = new NpgsqlConnection(_pg.ConnectionString(PostgresServer.ScramUser, "not-" + _pg.ScramPassword));
            await connection.OpenAsync();
        });
        Assert.Equal(PostgresErrorCodes.InvalidPassword, wrong.SqlState);
        Assert.Equal("28P01", wrong.SqlState);

        // Rotation on a role of its own, so the shared roles keep their passwords.
        var role = "rotated_" + Guid.NewGuid().ToString("N")[..8];
        await _pg.ExecAsSuperuserAsync($"create role {role} login password 'first-{role}'; grant connect on database {PostgresServer.Database} to {role}");
        await _pg.SetPasswordAsync(role, $"second-{role}");
        await using (var rotated = new NpgsqlConnection(_pg.ConnectionString(role, $"second-{role}")))
        {
            await rotated.OpenAsync();
        }

        var old = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var connection = new NpgsqlConnection(_pg.ConnectionString(role, $"first-{role}"));
            await connection.OpenAsync();
        });
        Assert.Equal("28P01", old.SqlState);
    }
}
