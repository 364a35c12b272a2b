using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using MySqlConnector;
using SecretlessProxy.Listeners.MySql;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Listeners.MySql;

/// <summary>
/// The MySql listener against a real MariaDB 10.11 (mysql_native_password and client_ed25519 users,
/// TLS on): unmodified clients (MySqlConnector, the mariadb CLI) holding no password run queries,
/// and every outcome the app sees is a MySQL packet. Each proxy is leak-scanned for the passwords it used.
/// </summary>
[Collection(MariaDbServer.Collection)]
public sealed class MySqlListenerTests
{
    private readonly MariaDbServer _db;

    public MySqlListenerTests(MariaDbServer db) => _db = db;

    /// <summary>A proxy with one MySql listener "db" logging in as <paramref name="user"/> with the password in a file.</summary>
    private async Task<(ProxyHarness Proxy, TestConfig Config, string PasswordFile)> StartProxyAsync(string user, string password, JsonObject? tls = null, JsonObject? policy = null, Action<TestConfig>? configure = null, string? upstream = null)
    {
        var config = new TestConfig();
        var passwordFile = config.SecretFile("db-password", password);
        config.Section["Listeners"]!["db"] = new JsonObject
        {
            ["Mode"] = "MySql",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = upstream ?? _db.ServerName + ":" + _db.Port,
            ["Credential"] = "db-login",
            ["Tls"] = tls ?? new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _db.CaFile },
        };
        config.Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = passwordFile, ["Username"] = user })
            .Policy("orders-db", policy ?? new JsonObject
            {
                ["Match"] = TestConfig.Match([_db.ServerName], ports: [_db.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        configure?.Invoke(config);
        var proxy = await ProxyHarness.StartAsync(config.Write());
        proxy.NeverEmit(_db.NativePassword, _db.Ed25519Password, _db.RotatingPassword, password);
        return (proxy, config, passwordFile);
    }

    private static int Port(ProxyHarness proxy) => proxy.App.GetListenerEndPoint("db").Port;

    /// <summary>What the app puts in its connection string: the proxy's port, any user name, no password.</summary>
    private static string AppConnectionString(ProxyHarness proxy, string? database = MariaDbServer.Database) =>
        $"Server=127.0.0.1;Port={Port(proxy)};User ID=the-app;Pooling=false;Connection Timeout=15;SslMode=None;Application Name=orders-app"
        + (database is null ? string.Empty : ";Database=" + database);

    private static async Task<object?> ScalarAsync(MySqlConnection connection, string sql)
    {
        await using var command = new MySqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    [MariaDbFact]
    public async Task MySqlConnector_without_a_password_runs_queries_as_the_credential_user_over_verified_tls()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword);
        await using (proxy)
        using (config)
        {
            await using (var connection = new MySqlConnection(AppConnectionString(proxy)))
            {
                await connection.OpenAsync();
                Assert.Equal(MariaDbServer.NativeUser + "@%", await ScalarAsync(connection, "select current_user()"));
                Assert.Equal(MariaDbServer.Database, await ScalarAsync(connection, "select database()"));
                Assert.Equal(15m, Convert.ToDecimal(await ScalarAsync(connection, $"select sum(quantity) from {MariaDbServer.Table}")));
                // The server sees the proxy's connection as TLS.
                await using (var status = new MySqlCommand("show session status like 'Ssl_cipher'", connection))
                await using (var reader = await status.ExecuteReaderAsync())
                {
                    Assert.True(await reader.ReadAsync());
                    Assert.NotEqual(string.Empty, reader.GetString(1));
                }

                // A transaction, rolled back, and a prepared statement through the splice.
                var id = 1000 + Random.Shared.Next(100000);
                await using (var tx = await connection.BeginTransactionAsync())
                {
                    await using var insert = new MySqlCommand($"insert into {MariaDbServer.Table} values (@id, 'fig', 1)", connection, tx);
                    insert.Parameters.AddWithValue("@id", id);
                    await insert.PrepareAsync();
                    Assert.Equal(1, await insert.ExecuteNonQueryAsync());
                    Assert.Equal(4L, Convert.ToInt64(await new MySqlCommand($"select count(*) from {MariaDbServer.Table}", connection, tx).ExecuteScalarAsync()));
                    await tx.RollbackAsync();
                }

                Assert.Equal(3L, Convert.ToInt64(await ScalarAsync(connection, $"select count(*) from {MariaDbServer.Table}")));
                await using (var prepared = new MySqlCommand($"select sku from {MariaDbServer.Table} where id = @id", connection))
                {
                    prepared.Parameters.AddWithValue("@id", 2);
                    await prepared.PrepareAsync();
                    Assert.Equal("pear", await prepared.ExecuteScalarAsync());
                }
            }

            var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection");
            Assert.Equal("connected", span.GetTagItem("secretless.outcome"));
            Assert.Equal("allow", span.GetTagItem("secretless.decision"));
            Assert.Equal("orders-db", span.GetTagItem("secretless.policy"));
            Assert.Equal("mariadb", span.GetTagItem("db.system.name"));
            Assert.Equal(MariaDbServer.Database, span.GetTagItem("db.namespace"));
            Assert.Equal(MariaDbServer.NativeUser, span.GetTagItem("secretless.database.user"));
            Assert.Equal(MySqlWire.NativePassword, span.GetTagItem("secretless.database.auth_method"));
            Assert.IsType<double>(span.GetTagItem("secretless.handshake.duration_ms"));

            using var admin = new HttpClient();
            var decisions = JsonNode.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=10")))!["decisions"]!.AsArray();
            var record = Assert.Single(decisions)!;
            Assert.Equal("mysql", (string?)record["destination"]!["scheme"]);
            Assert.Equal("/orders", (string?)record["destination"]!["path"]);
            Assert.Equal(MariaDbServer.NativeUser, (string?)record["databaseUser"]);
            Assert.Equal("connected", (string?)record["outcome"]);
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [MariaDbFact]
    public async Task A_large_result_set_of_several_megabytes_arrives_whole()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword);
        await using (proxy)
        using (config)
        {
            await using var connection = new MySqlConnection(AppConnectionString(proxy));
            await connection.OpenAsync();
            // 6000 rows of 1000 bytes from MariaDB's sequence engine, and one 20 MB value (a payload split over two packets).
            await using (var rows = new MySqlCommand("select seq, repeat(substr('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 1 + seq % 26, 1), 1000) from seq_1_to_6000", connection))
            await using (var reader = await rows.ExecuteReaderAsync())
            {
                long bytes = 0;
                var count = 0;
                while (await reader.ReadAsync())
                {
                    count++;
                    var text = reader.GetString(1);
                    Assert.Equal((char)(65 + (reader.GetInt64(0) % 26)), text[999]);
                    bytes += text.Length;
                }

                Assert.Equal(6000, count);
                Assert.Equal(6_000_000, bytes);
            }

            Assert.Equal(20L * 1024 * 1024, Convert.ToInt64(await ScalarAsync(connection, "select length(repeat('x', 20 * 1024 * 1024))")));
            var big = (string)(await ScalarAsync(connection, "select repeat('y', 20 * 1024 * 1024)"))!;
            Assert.Equal(20 * 1024 * 1024, big.Length);
        }
    }

    [MariaDbFact]
    public async Task The_mariadb_cli_without_a_password_runs_queries_for_native_and_ed25519_users()
    {
        foreach (var (user, password, method) in new[] { (MariaDbServer.NativeUser, _db.NativePassword, MySqlWire.NativePassword), (MariaDbServer.Ed25519User, _db.Ed25519Password, MySqlWire.Ed25519) })
        {
            var (proxy, config, _) = await StartProxyAsync(user, password);
            await using (proxy)
            using (config)
            {
                var result = await ExternalClient.RunAsync(MariaDbServer.Client,
                    ["--no-defaults", "-h", "127.0.0.1", "--protocol=TCP", "-P", Port(proxy).ToString(), "-u", "whoever", "--skip-password", "--skip-ssl", "--batch", "--skip-column-names",
                     MariaDbServer.Database, "-e", $"select current_user(); select group_concat(sku order by id) from {MariaDbServer.Table}"]);
                Assert.True(result.ExitCode == 0, result.ToString());
                Assert.Equal(user + "@%\napple,pear,plum", result.Output.TrimEnd('\n'));
                var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection");
                Assert.Equal(method, span.GetTagItem("secretless.database.auth_method"));
                await proxy.AssertNoSecretEmittedAsync();
            }
        }
    }

    [MariaDbFact]
    public async Task An_ed25519_user_logs_in_for_MySqlConnector()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.Ed25519User, _db.Ed25519Password);
        await using (proxy)
        using (config)
        {
            // MySqlConnector itself needs a plugin package for ed25519; through the proxy it needs nothing.
            await using var connection = new MySqlConnection(AppConnectionString(proxy));
            await connection.OpenAsync();
            Assert.Equal(MariaDbServer.Ed25519User + "@%", await ScalarAsync(connection, "select current_user()"));
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [MariaDbFact]
    public async Task A_wrong_credential_gives_the_app_1045_with_the_proxys_context_and_no_password()
    {
        var wrong = "my-wrong-password-5be0c2d1";
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, wrong);
        await using (proxy)
        using (config)
        {
            await using var connection = new MySqlConnection(AppConnectionString(proxy));
            var error = await Assert.ThrowsAsync<MySqlException>(() => connection.OpenAsync());
            Assert.Equal(1045, error.Number);
            Assert.Equal("28000", error.SqlState);
            Assert.Contains("the proxy's login to " + _db.ServerName + ":" + _db.Port + " as '" + MariaDbServer.NativeUser + "' with credential 'db-login' failed", error.Message);
            Assert.Contains("Access denied for user", error.Message);
            Assert.DoesNotContain(wrong, error.ToString());

            var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection");
            Assert.Equal("login-failed", span.GetTagItem("secretless.outcome"));
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [MariaDbFact]
    public async Task A_rotated_credential_is_used_by_the_next_connection()
    {
        var second = "my-rotate-second-" + Guid.NewGuid().ToString("N")[..12];
        await _db.SetPasswordAsync(MariaDbServer.RotatingUser, _db.RotatingPassword);
        var (proxy, config, passwordFile) = await StartProxyAsync(MariaDbServer.RotatingUser, _db.RotatingPassword);
        await using (proxy)
        using (config)
        {
            proxy.NeverEmit(second);
            await using (var before = new MySqlConnection(AppConnectionString(proxy)))
            {
                await before.OpenAsync();
                Assert.Equal(MariaDbServer.RotatingUser + "@%", await ScalarAsync(before, "select current_user()"));
            }

            // The database's password changes first (as a rotation job does), then the secret file.
            await _db.SetPasswordAsync(MariaDbServer.RotatingUser, second);
            try
            {
                await using (var stale = new MySqlConnection(AppConnectionString(proxy)))
                {
                    Assert.Equal(1045, (await Assert.ThrowsAsync<MySqlException>(() => stale.OpenAsync())).Number);
                }

                var staged = passwordFile + ".new";
                await File.WriteAllTextAsync(staged, second + "\n");
                File.Move(staged, passwordFile, overwrite: true);
                await using (var after = new MySqlConnection(AppConnectionString(proxy)))
                {
                    await after.OpenAsync();
                    Assert.Equal(MariaDbServer.RotatingUser + "@%", await ScalarAsync(after, "select current_user()"));
                }
            }
            finally
            {
                await _db.SetPasswordAsync(MariaDbServer.RotatingUser, _db.RotatingPassword);
            }

            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [MariaDbFact]
    public async Task Policy_decides_at_connect_time_by_schema_and_caller_with_1130()
    {
        var policy = new JsonObject
        {
            ["Match"] = TestConfig.Match([_db.ServerName], pathPrefix: "/orders", ports: [_db.Port]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        };
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword, policy: policy, configure: c => c.Policy("other-callers", new JsonObject
        {
            ["Match"] = TestConfig.Match([_db.ServerName], pathPrefix: "/reports", ports: [_db.Port]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            ["Caller"] = new JsonObject { ["Uids"] = new JsonArray(54321) },
        }));
        await using (proxy)
        using (config)
        {
            var connectionsBefore = await ServerConnectionsAsync();
            await using (var allowed = new MySqlConnection(AppConnectionString(proxy)))
            {
                await allowed.OpenAsync();
            }

            // No schema: the path is "/", which no policy covers.
            await using (var none = new MySqlConnection(AppConnectionString(proxy, database: null)))
            {
                var error = await Assert.ThrowsAsync<MySqlException>(() => none.OpenAsync());
                Assert.Equal(1130, error.Number);
                Assert.Contains("denied by policy: no policy matches", error.Message);
            }

            // A policy covers "reports", but for another uid than this test process's.
            await using (var wrongCaller = new MySqlConnection(AppConnectionString(proxy, database: MariaDbServer.OtherDatabase)))
            {
                var error = await Assert.ThrowsAsync<MySqlException>(() => wrongCaller.OpenAsync());
                Assert.Equal(1130, error.Number);
                Assert.Contains("other-callers", error.Message);
            }

            var outcomes = proxy.Spans.Where(s => s.DisplayName == "secretless.database.connection").Select(s => (string)s.GetTagItem("secretless.outcome")!).ToArray();
            Assert.Equal(["connected", "denied", "denied"], outcomes);
            // The denied connections never reached the server: one login, plus the counter query itself.
            Assert.Equal(connectionsBefore + 2, await ServerConnectionsAsync());
        }
    }

    [MariaDbFact]
    public async Task Malformed_and_abandoned_handshakes_reach_nothing_and_the_proxy_keeps_serving()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword);
        await using (proxy)
        using (config)
        {
            var connectionsBefore = await ServerConnectionsAsync();

            // Garbage after the greeting: ERR 1043 Bad handshake.
            await using (var garbage = await RawMySqlClient.ConnectAsync(Port(proxy)))
            {
                await garbage.ReadAsync();
                await garbage.SendAsync(MySqlWire.Packet(1, Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n\r\n")));
                var (_, reply) = await garbage.ReadAsync();
                Assert.Equal(MySqlWire.ErHandshake, RawMySqlClient.ErrorCode(reply));
            }

            // A packet that claims 16 MB: refused without waiting for it.
            await using (var oversized = await RawMySqlClient.ConnectAsync(Port(proxy)))
            {
                await oversized.ReadAsync();
                await oversized.SendAsync([0xFF, 0xFF, 0xFF, 1, 0, 0]);
                var (_, reply) = await oversized.ReadAsync();
                Assert.Equal(MySqlWire.ErHandshake, RawMySqlClient.ErrorCode(reply));
            }

            // Abandoned: connect and close, and half a packet then close.
            using (var silent = new TcpClient())
            {
                await silent.ConnectAsync(IPAddress.Loopback, Port(proxy));
            }

            await using (var half = await RawMySqlClient.ConnectAsync(Port(proxy)))
            {
                await half.ReadAsync();
                await half.SendAsync([0x40, 0, 0, 1, 0x0D, 0xA6]);
            }

            // The proxy still serves, and the server saw one login: this one (plus the counter query).
            await using (var connection = new MySqlConnection(AppConnectionString(proxy)))
            {
                await connection.OpenAsync();
                Assert.Equal(1, Convert.ToInt32(await ScalarAsync(connection, "select 1")));
            }

            Assert.Equal(connectionsBefore + 2, await ServerConnectionsAsync());
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [MariaDbFact]
    public async Task An_app_that_never_answers_the_greeting_is_closed_at_the_handshake_timeout()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword, configure: c => c.Section["Listeners"]!["db"]!["HandshakeTimeout"] = "00:00:01");
        await using (proxy)
        using (config)
        {
            await using var idle = await RawMySqlClient.ConnectAsync(Port(proxy));
            var (sequence, greeting) = await idle.ReadAsync();
            Assert.Equal(0, sequence);
            Assert.Equal(10, greeting[0]);
            // Nothing more is sent: the proxy closes the connection without an answer.
            Assert.Equal(0, await idle.Stream.ReadAsync(new byte[1]));
            await Poll.UntilAsync(() => proxy.Logs.Entries.Any(e => e.Message.Contains("MySQL handshake response", StringComparison.Ordinal)), "the handshake timeout logged");
        }
    }

    [MariaDbFact]
    public async Task Com_change_user_is_refused_and_the_session_stays_the_credentials()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword);
        await using (proxy)
        using (config)
        {
            await using var client = await RawMySqlClient.ConnectAsync(Port(proxy));
            var ok = await client.LogInAsync("the-app", MariaDbServer.Database);
            Assert.Equal(MySqlWire.OkHeader, ok[0]);

            // COM_CHANGE_USER to root with an empty auth response, as mysql_change_user sends it.
            await client.SendAsync(MySqlWire.Packet(0, [MySqlWire.ComChangeUser, .. "root\0"u8, 0, .. "mysql\0"u8]));
            var (sequence, refused) = await client.ReadAsync();
            Assert.Equal(1, sequence);
            Assert.Equal(MySqlWire.ErSpecificAccessDenied, RawMySqlClient.ErrorCode(refused));
            Assert.Contains("COM_CHANGE_USER is refused by the proxy", Encoding.UTF8.GetString(refused));

            // Still logged in as the credential's user, in the same schema; and COM_RESET_CONNECTION passes.
            Assert.Contains(MariaDbServer.NativeUser + "@%", await client.QueryAsync("select current_user()"));
            await client.SendAsync(MySqlWire.Packet(0, [MySqlWire.ComResetConnection]));
            var (_, reset) = await client.ReadAsync();
            Assert.Equal(MySqlWire.OkHeader, reset[0]);
            Assert.Contains(MariaDbServer.NativeUser + "@%", await client.QueryAsync("select current_user()"));
        }
    }

    [MariaDbFact]
    public async Task Kill_query_from_another_connection_interrupts_by_server_id_and_by_the_proxys_id()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword);
        await using (proxy)
        using (config)
        {
            await using var sleeper = new MySqlConnection(AppConnectionString(proxy));
            await sleeper.OpenAsync();
            await using var killer = new MySqlConnection(AppConnectionString(proxy));
            await killer.OpenAsync();
            var serverId = Convert.ToInt64(await ScalarAsync(sleeper, "select connection_id()"));
            // The id the app got in the greeting is the proxy's, not the server's.
            Assert.NotEqual(serverId, (long)sleeper.ServerThread);

            foreach (var id in new[] { serverId, (long)sleeper.ServerThread })
            {
                var sleep = ScalarAsync(sleeper, "select sleep(60)");
                await WaitForSleepAsync(serverId);
                await using (var kill = new MySqlCommand("KILL QUERY " + id, killer))
                {
                    await kill.ExecuteNonQueryAsync();
                }

                // Interrupted: SLEEP() returns 1, or the statement fails with ER_QUERY_INTERRUPTED (1317);
                // it returns 0 only when it ran to the end.
                try
                {
                    Assert.Equal(1L, Convert.ToInt64(await sleep));
                }
                catch (MySqlException interrupted)
                {
                    Assert.Equal(1317, interrupted.Number);
                }
            }

            // The session survives its interrupted statements.
            Assert.Equal(1, Convert.ToInt32(await ScalarAsync(sleeper, "select 1")));
        }
    }

    [MariaDbFact]
    public async Task Tls_to_a_server_whose_certificate_another_ca_signed_fails_with_1429_naming_tls()
    {
        using var otherCa = new TestPki(Path.GetTempPath());
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword, tls: new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = otherCa.CaFile });
        await using (proxy)
        using (config)
        {
            await using var connection = new MySqlConnection(AppConnectionString(proxy));
            var error = await Assert.ThrowsAsync<MySqlException>(() => connection.OpenAsync());
            Assert.Equal(MySqlWire.ErConnectToForeignDataSource, error.Number);
            Assert.Equal("08S01", error.SqlState);
            Assert.Contains("TLS with the database server", error.Message);
            Assert.Equal("upstream-tls-failed", Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.outcome"));
        }

        File.Delete(otherCa.CaFile);
    }

    [MariaDbFact]
    public async Task With_AcceptTls_the_app_verifies_the_proxy_against_the_local_ca()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword, configure: c =>
        {
            c.Section["Listeners"]!["db"]!["AcceptTls"] = true;
            c.Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(c.Directory, "ca") });
        });
        await using (proxy)
        using (config)
        {
            var localCa = Path.Combine(config.Directory, "ca", "ca.crt");
            await using (var connection = new MySqlConnection($"Server=localhost;Port={Port(proxy)};User ID=the-app;Database={MariaDbServer.Database};Pooling=false;Connection Timeout=15;SslMode=VerifyFull;SslCa={localCa}"))
            {
                await connection.OpenAsync();
                Assert.Equal(MariaDbServer.NativeUser + "@%", await ScalarAsync(connection, "select current_user()"));
            }

            // The mariadb client verifying the address it connected to against the local CA (libmariadb
            // sends no SNI, so the proxy's leaf is for the listener's address).
            var cli = await ExternalClient.RunAsync(MariaDbServer.Client,
                ["--no-defaults", "-h", "127.0.0.1", "--protocol=TCP", "-P", Port(proxy).ToString(), "-u", "x", "--skip-password", "--ssl", "--ssl-ca=" + localCa, "--ssl-verify-server-cert", "--batch", "--skip-column-names", "-e", "select 'tls ok'"]);
            Assert.True(cli.ExitCode == 0, cli.ToString());
            Assert.Equal("tls ok", cli.Output.Trim());

            // Plaintext apps still work on the same listener.
            await using (var plain = new MySqlConnection(AppConnectionString(proxy)))
            {
                await plain.OpenAsync();
            }

            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [MariaDbFact]
    public async Task Without_tls_native_and_ed25519_logins_work_and_the_server_sees_no_tls()
    {
        foreach (var (user, password) in new[] { (MariaDbServer.NativeUser, _db.NativePassword), (MariaDbServer.Ed25519User, _db.Ed25519Password) })
        {
            var (proxy, config, _) = await StartProxyAsync(user, password, tls: new JsonObject { ["Mode"] = "Disable" });
            await using (proxy)
            using (config)
            {
                await using var connection = new MySqlConnection(AppConnectionString(proxy));
                await connection.OpenAsync();
                Assert.Equal(user + "@%", await ScalarAsync(connection, "select current_user()"));
                await using (var status = new MySqlCommand("show session status like 'Ssl_cipher'", connection))
                await using (var reader = await status.ExecuteReaderAsync())
                {
                    Assert.True(await reader.ReadAsync());
                    Assert.Equal(string.Empty, reader.GetString(1));
                }

                await proxy.AssertNoSecretEmittedAsync();
            }
        }
    }

    [MariaDbFact]
    public async Task A_pooled_connection_is_reset_through_the_proxy_and_keeps_its_user()
    {
        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword);
        await using (proxy)
        using (config)
        {
            var pooled = AppConnectionString(proxy).Replace("Pooling=false", "Pooling=true;Maximum Pool Size=1;Connection Reset=true;Allow User Variables=true", StringComparison.Ordinal);
            long first;
            await using (var connection = new MySqlConnection(pooled))
            {
                await connection.OpenAsync();
                first = Convert.ToInt64(await ScalarAsync(connection, "select connection_id()"));
                await ScalarAsync(connection, "set @left_over = 42");
            }

            // The same server session, reset (COM_RESET_CONNECTION passes the command filter): the variable is gone.
            await using (var connection = new MySqlConnection(pooled))
            {
                await connection.OpenAsync();
                Assert.Equal(first, Convert.ToInt64(await ScalarAsync(connection, "select connection_id()")));
                Assert.Equal(DBNull.Value, await ScalarAsync(connection, "select @left_over"));
                Assert.Equal(MariaDbServer.NativeUser + "@%", await ScalarAsync(connection, "select current_user()"));
            }

            MySqlConnection.ClearAllPools();
        }
    }

    [MariaDbFact]
    public async Task An_unreachable_server_gives_the_app_1429_with_the_reason_in_the_mariadb_client_too()
    {
        int closedPort;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            closedPort = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var (proxy, config, _) = await StartProxyAsync(MariaDbServer.NativeUser, _db.NativePassword, upstream: "127.0.0.1:" + closedPort, policy: new JsonObject
        {
            ["Match"] = TestConfig.Match(["127.0.0.1"], ports: [closedPort]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        });
        await using (proxy)
        using (config)
        {
            await using var connection = new MySqlConnection(AppConnectionString(proxy));
            var error = await Assert.ThrowsAsync<MySqlException>(() => connection.OpenAsync());
            Assert.Equal(MySqlWire.ErConnectToForeignDataSource, error.Number);
            Assert.Equal("08S01", error.SqlState);
            Assert.Contains("could not connect to the database server 127.0.0.1:" + closedPort, error.Message);

            Assert.Equal("upstream-unreachable", Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.outcome"));

            // The mariadb client shows the reason: libmariadb reports a client-range code (2003) sent by
            // a server as "malformed packet" and drops the message, a server-range one as it came.
            var cli = await ExternalClient.RunAsync(MariaDbServer.Client,
                ["--no-defaults", "-h", "127.0.0.1", "--protocol=TCP", "-P", Port(proxy).ToString(), "-u", "x", "--skip-password", "--skip-ssl", "-e", "select 1"]);
            Assert.NotEqual(0, cli.ExitCode);
            Assert.Contains("ERROR 1429 (08S01)", cli.Error);
            Assert.Contains("could not connect to the database server 127.0.0.1:" + closedPort, cli.Error);
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    private async Task<long> ServerConnectionsAsync() =>
        long.Parse((await _db.ExecAsRootAsync("show global status like 'Connections'")).Split('\t')[1], System.Globalization.CultureInfo.InvariantCulture);

    private async Task WaitForSleepAsync(long serverId)
    {
        var started = DateTime.UtcNow;
        while (await _db.ExecAsRootAsync($"select count(*) from information_schema.processlist where id = {serverId} and info like 'select sleep%'") != "1")
        {
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(20), "the query never started");
            await Task.Delay(50);
        }
    }
}
