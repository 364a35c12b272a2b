using MySqlConnector;
using Xunit;
using Xunit.Abstractions;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>The MariaDB test server itself: real clients reach it with each password method, over verified TLS.</summary>
[Collection(MariaDbServer.Collection)]
public sealed class MariaDbServerTests
{
    private readonly MariaDbServer _db;

    public MariaDbServerTests(MariaDbServer db, ITestOutputHelper output)
    {
        _db = db;
        if (db.Available)
        {
            output.WriteLine($"MariaDB {db.Version} at {db.Host}:{db.Port}, started in {db.StartupTime.TotalSeconds:F1} s");
        }
    }

    [MariaDbFact]
    public async Task MySqlConnector_logs_in_with_native_password_over_verified_tls_and_reads_the_table()
    {
        await using var connection = new MySqlConnection(_db.ConnectionString(MariaDbServer.NativeUser, _db.NativePassword));
        await connection.OpenAsync();
        await using var count = new MySqlCommand($"select count(*) from {MariaDbServer.Table}", connection);
        Assert.Equal(MariaDbServer.TableRows, Convert.ToInt32(await count.ExecuteScalarAsync()));
        await using var cipher = new MySqlCommand("show session status like 'Ssl_cipher'", connection);
        await using var reader = await cipher.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.NotEqual(string.Empty, reader.GetString(1));
        Assert.Contains("MariaDB", _db.Version, StringComparison.Ordinal);
    }

    [MariaDbFact]
    public async Task Real_mariadb_client_logs_in_with_ed25519_and_verifies_the_server_certificate()
    {
        Assert.Equal("ed25519", await _db.ExecAsRootAsync($"select plugin from mysql.user where user = '{MariaDbServer.Ed25519User}'"));
        var result = await ExternalClient.RunAsync(MariaDbServer.Client,
            ["--no-defaults", "-h", _db.ServerName, "--protocol=TCP", "-P", _db.Port.ToString(), "-u", MariaDbServer.Ed25519User, "--password=" + _db.Ed25519Password,
             "--ssl", "--ssl-ca=" + _db.CaFile, "--ssl-verify-server-cert", "--batch", "--skip-column-names", MariaDbServer.Database, "-e", $"select sku from {MariaDbServer.Table} order by id"]);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("apple\npear\nplum", result.Output.TrimEnd('\n'));
    }

    [MariaDbFact]
    public async Task A_wrong_password_is_1045()
    {
        var wrong = await Assert.ThrowsAsync<MySqlException>(async () =>
        {
            await using var connection = new MySqlConnection(_db.ConnectionString(MariaDbServer.NativeUser, "not-" + _db.NativePassword));
            await connection.OpenAsync();
        });
        Assert.Equal(1045, wrong.Number);
    }
}
