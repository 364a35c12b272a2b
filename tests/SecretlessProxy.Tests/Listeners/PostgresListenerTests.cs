using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Npgsql;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// The Postgres listener against a real PostgreSQL 15 (scram-sha-256, md5 and password users, TLS
/// on): unmodified clients (Npgsql, psql) holding no password run queries, and every outcome the
/// app sees is a PostgreSQL message. Each proxy is also leak-scanned for the passwords it used.
/// </summary>
[Collection(PostgresServer.Collection)]
public sealed class PostgresListenerTests
{
    private readonly PostgresServer _pg;
    private readonly ITestOutputHelper _output;

    public PostgresListenerTests(PostgresServer pg, ITestOutputHelper output)
    {
        _pg = pg;
        _output = output;
    }

    /// <summary>A proxy with one Postgres listener "db" logging in as <paramref name="user"/> with the password in a file.</summary>
    private async Task<(ProxyHarness Proxy, TestConfig Config, string PasswordFile)> StartProxyAsync(string user, string password, JsonObject? tls = null, JsonObject? policy = null, Action<TestConfig>? configure = null)
    {
        var config = new TestConfig();
        var passwordFile = config.SecretFile("db-password", password);
        config.PostgresListener("db", _pg.ServerName + ":" + _pg.Port, "db-login", tls ?? new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _pg.CaFile })
            .Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = passwordFile, ["Username"] = user })
            .Policy("orders-db", policy ?? new JsonObject
            {
                ["Match"] = TestConfig.Match([_pg.ServerName], ports: [_pg.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        configure?.Invoke(config);
        var proxy = await ProxyHarness.StartAsync(config.Write());
        proxy.NeverEmit(_pg.ScramPassword, _pg.Md5Password, _pg.CleartextPassword, _pg.SuperuserPassword, password);
        return (proxy, config, passwordFile);
    }

    /// <summary>What the app puts in its connection string: the proxy's port, any user name, no password.</summary>
    private static string AppConnectionString(ProxyHarness proxy, string database = PostgresServer.Database, string sslMode = "Disable") =>
        $"Host=127.0.0.1;Port={proxy.App.GetListenerEndPoint("db").Port};Database={database};Username=the-app;Pooling=false;Timeout=15;SSL Mode={sslMode};Application Name=orders-app;Gss Encryption Mode=Disable";

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    [PostgresFact]
    public async Task Npgsql_without_a_password_runs_queries_as_the_credential_user_over_verified_tls_with_scram()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword);
        await using (proxy)
        using (config)
        {
            // SSL Mode Prefer: the proxy answers the app's SSLRequest with 'N' (loopback) and the app goes on.
            await using var connection = new NpgsqlConnection(AppConnectionString(proxy, sslMode: "Prefer"));
            await connection.OpenAsync();
            Assert.Equal(PostgresServer.ScramUser, await ScalarAsync(connection, "select current_user"));
            Assert.Equal((long)PostgresServer.TableRows, await ScalarAsync(connection, $"select count(*) from {PostgresServer.Table}"));
            Assert.Equal(15L, await ScalarAsync(connection, $"select sum(quantity) from {PostgresServer.Table}"));
            // The server sees the proxy's connection as TLS.
            Assert.Equal(true, await ScalarAsync(connection, "select ssl from pg_stat_ssl where pid = pg_backend_pid()"));
            // Startup parameters the app sent reach the server.
            Assert.Equal("orders-app", await ScalarAsync(connection, "select current_setting('application_name')"));
            // Extended protocol and a transaction through the splice.
            await using (var insert = new NpgsqlCommand($"insert into {PostgresServer.Table} values (@id, 'fig', 1)", connection))
            {
                insert.Parameters.AddWithValue("id", 1000 + Random.Shared.Next(100000));
                await using var tx = await connection.BeginTransactionAsync();
                insert.Transaction = tx;
                Assert.Equal(1, await insert.ExecuteNonQueryAsync());
                await tx.RollbackAsync();
            }

            await connection.CloseAsync();

            var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection");
            Assert.Equal("connected", span.GetTagItem("secretless.outcome"));
            Assert.Equal("allow", span.GetTagItem("secretless.decision"));
            Assert.Equal("orders-db", span.GetTagItem("secretless.policy"));
            Assert.Equal("db-login", span.GetTagItem("secretless.credential.name"));
            Assert.Equal("File", span.GetTagItem("secretless.credential.source"));
            Assert.Equal(PostgresServer.Database, span.GetTagItem("db.namespace"));
            Assert.Equal(PostgresServer.ScramUser, span.GetTagItem("secretless.database.user"));
            // Over TLS the proxy binds SCRAM to the channel (tls-server-end-point).
            Assert.Equal("scram-sha-256-plus", span.GetTagItem("secretless.database.auth_method"));
            Assert.IsType<double>(span.GetTagItem("secretless.handshake.duration_ms"));

            using var admin = new HttpClient();
            var decisions = JsonNode.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=10")))!["decisions"]!.AsArray();
            var record = Assert.Single(decisions)!;
            Assert.Equal("postgres", (string?)record["destination"]!["scheme"]);
            Assert.Equal("/orders", (string?)record["destination"]!["path"]);
            Assert.Equal(PostgresServer.ScramUser, (string?)record["databaseUser"]);
            Assert.Equal("connected", (string?)record["outcome"]);
            Assert.Equal("db-login", (string?)record["credential"]!["name"]);
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [PostgresFact]
    public async Task Psql_without_a_password_runs_a_query_and_its_ctrl_c_cancels_through_the_proxy()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword);
        await using (proxy)
        using (config)
        {
            var port = proxy.App.GetListenerEndPoint("db").Port.ToString();
            var environment = new Dictionary<string, string> { ["PGPASSWORD"] = "", ["PGCONNECT_TIMEOUT"] = "10" };
            var conninfo = $"host=127.0.0.1 port={port} dbname=orders user=whoever sslmode=prefer";
            var query = await ExternalClient.RunAsync("/usr/bin/psql", ["-X", "-w", "-Atc", "select current_user || ' ' || count(*) from " + PostgresServer.Table, conninfo], environment);
            Assert.True(query.ExitCode == 0, query.ToString());
            Assert.Equal(PostgresServer.ScramUser + " 3", query.Output.Trim());

            // psql sends a CancelRequest on SIGINT (a new connection with the key data the proxy issued).
            var cancelled = await ExternalClient.RunAsync("timeout", ["-s", "INT", "3", "/usr/bin/psql", "-X", "-w", "-c", "select pg_sleep(30)", conninfo], environment);
            Assert.Contains("canceling statement due to user request", cancelled.Error);
        }
    }

    [PostgresFact]
    public async Task With_AcceptTls_the_app_verifies_the_proxy_against_the_local_ca()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, configure: c =>
        {
            c.Section["Listeners"]!["db"]!["AcceptTls"] = true;
            c.Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(c.Directory, "ca") });
        });
        await using (proxy)
        using (config)
        {
            var localCa = Path.Combine(config.Directory, "ca", "ca.crt");
            var port = proxy.App.GetListenerEndPoint("db").Port;
            await using (var connection = new NpgsqlConnection($"Host=localhost;Port={port};Database={PostgresServer.Database};Username=the-app;Pooling=false;Timeout=15;SSL Mode=VerifyFull;Root Certificate={localCa};Gss Encryption Mode=Disable"))
            {
                await connection.OpenAsync();
                Assert.Equal(PostgresServer.ScramUser, await ScalarAsync(connection, "select current_user"));
            }

            // psql verifying the name it connected to (localhost) against the local CA.
            var psql = await ExternalClient.RunAsync("/usr/bin/psql", ["-X", "-w", "-Atc", "select 'tls ok'", $"host=localhost hostaddr=127.0.0.1 port={port} dbname=orders user=x sslmode=verify-full sslrootcert={localCa}"], new Dictionary<string, string> { ["PGPASSWORD"] = "" });
            Assert.True(psql.ExitCode == 0, psql.ToString());
            Assert.Equal("tls ok", psql.Output.Trim());

            // A client that trusts only the database's CA does not trust the proxy: no silent downgrade.
            await using (var untrusting = new NpgsqlConnection($"Host=localhost;Port={port};Database={PostgresServer.Database};Username=the-app;Pooling=false;Timeout=15;SSL Mode=VerifyFull;Root Certificate={_pg.CaFile};Gss Encryption Mode=Disable"))
            {
                await Assert.ThrowsAnyAsync<Exception>(() => untrusting.OpenAsync());
            }

            // And plaintext apps still work on the same listener.
            await using (var plain = new NpgsqlConnection(AppConnectionString(proxy)))
            {
                await plain.OpenAsync();
            }
        }
    }

    [PostgresFact]
    public async Task Npgsql_cancel_reaches_the_backend_that_runs_the_query()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword);
        await using (proxy)
        using (config)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
            await connection.OpenAsync();
            var serverPid = (int)(await ScalarAsync(connection, "select pg_backend_pid()"))!;
            // The app holds the proxy's key data, not the server's.
            Assert.NotEqual(serverPid, connection.ProcessID);

            await using var sleep = new NpgsqlCommand("select pg_sleep(30)", connection);
            var running = sleep.ExecuteNonQueryAsync();
            var started = DateTime.UtcNow;
            while (await _pg.ExecAsSuperuserAsync($"select count(*) from pg_stat_activity where pid = {serverPid} and query like 'select pg_sleep%' and state = 'active'") != "1")
            {
                Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(20), "the query never started");
                await Task.Delay(50);
            }

            sleep.Cancel();
            var error = await Assert.ThrowsAnyAsync<Exception>(() => running);
            var postgres = error as PostgresException ?? error.InnerException as PostgresException;
            Assert.NotNull(postgres);
            Assert.Equal("57014", postgres.SqlState);
            // The session survives its cancelled statement.
            Assert.Equal(1, await ScalarAsync(connection, "select 1"));
        }
    }

    [PostgresFact]
    public async Task A_cancel_request_with_a_wrong_key_cancels_nothing()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword);
        await using (proxy)
        using (config)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
            await connection.OpenAsync();
            await using var sleep = new NpgsqlCommand("select pg_sleep(1.5)", connection);
            var running = sleep.ExecuteNonQueryAsync();
            // The right process id with a wrong key, as a guessing neighbour would send it.
            var packet = new byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(packet, 16);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), 80877102);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(8), connection.ProcessID);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(12), 12345);
            using (var raw = new TcpClient())
            {
                await raw.ConnectAsync(IPAddress.Loopback, proxy.App.GetListenerEndPoint("db").Port);
                await raw.GetStream().WriteAsync(packet);
                Assert.Equal(0, await raw.GetStream().ReadAsync(new byte[1]));
            }

            await running;
            Assert.Contains(proxy.Logs.Entries, e => e.Message.Contains("Ignored a cancel request", StringComparison.Ordinal));
        }
    }

    [PostgresFact]
    public async Task Md5_and_password_users_log_in_and_cleartext_without_tls_is_refused()
    {
        var (md5, md5Config, _) = await StartProxyAsync(PostgresServer.Md5User, _pg.Md5Password);
        await using (md5)
        using (md5Config)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(md5));
            await connection.OpenAsync();
            Assert.Equal(PostgresServer.Md5User, await ScalarAsync(connection, "select current_user"));
            Assert.Equal("md5", Assert.Single(md5.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.database.auth_method"));
            await md5.AssertNoSecretEmittedAsync();
        }

        var (clear, clearConfig, _) = await StartProxyAsync(PostgresServer.CleartextUser, _pg.CleartextPassword);
        await using (clear)
        using (clearConfig)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(clear));
            await connection.OpenAsync();
            Assert.Equal(PostgresServer.CleartextUser, await ScalarAsync(connection, "select current_user"));
            Assert.Equal("password", Assert.Single(clear.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.database.auth_method"));
            await clear.AssertNoSecretEmittedAsync();
        }

        // Tls Mode Disable: the server then asks for the password in cleartext on an unencrypted connection.
        var (plain, plainConfig, _) = await StartProxyAsync(PostgresServer.CleartextUser, _pg.CleartextPassword, tls: new JsonObject { ["Mode"] = "Disable" });
        await using (plain)
        using (plainConfig)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(plain));
            var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
            Assert.Equal("28000", error.SqlState);
            Assert.Contains("cleartext over a connection without TLS", error.MessageText);
            await plain.AssertNoSecretEmittedAsync();
        }
    }

    [PostgresFact]
    public async Task Scram_works_without_tls_too()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, tls: new JsonObject { ["Mode"] = "Disable" });
        await using (proxy)
        using (config)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
            await connection.OpenAsync();
            Assert.Equal(false, await ScalarAsync(connection, "select ssl from pg_stat_ssl where pid = pg_backend_pid()"));
            Assert.Equal("scram-sha-256", Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.database.auth_method"));
        }
    }

    [PostgresFact]
    public async Task A_wrong_credential_gives_the_app_a_clean_error_response_without_the_password()
    {
        var wrong = "pg-wrong-password-5be0c2d1";
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, wrong);
        await using (proxy)
        using (config)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
            var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
            Assert.Equal("28P01", error.SqlState);
            Assert.Equal("FATAL", error.Severity);
            Assert.Contains("login to " + _pg.ServerName + ":" + _pg.Port + " as \"" + PostgresServer.ScramUser + "\" with credential 'db-login' failed", error.MessageText);
            Assert.Contains("password authentication failed", error.MessageText);
            Assert.DoesNotContain(wrong, error.ToString());

            var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection");
            Assert.Equal("login-failed", span.GetTagItem("secretless.outcome"));
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [PostgresFact]
    public async Task A_rotated_credential_is_used_by_the_next_connection()
    {
        var role = "rotating_" + Guid.NewGuid().ToString("N")[..8];
        var first = "pg-rotate-first-" + Guid.NewGuid().ToString("N")[..12];
        var second = "pg-rotate-second-" + Guid.NewGuid().ToString("N")[..12];
        await _pg.ExecAsSuperuserAsync($"SET password_encryption = 'scram-sha-256'; CREATE ROLE {role} LOGIN PASSWORD '{first}'; GRANT CONNECT ON DATABASE {PostgresServer.Database} TO {role}");
        var (proxy, config, passwordFile) = await StartProxyAsync(role, first);
        await using (proxy)
        using (config)
        {
            proxy.NeverEmit(second);
            await using (var before = new NpgsqlConnection(AppConnectionString(proxy)))
            {
                await before.OpenAsync();
                Assert.Equal(role, await ScalarAsync(before, "select current_user"));
            }

            // The database's password changes first (as a rotation job does), then the secret file.
            await _pg.SetPasswordAsync(role, second);
            await using (var stale = new NpgsqlConnection(AppConnectionString(proxy)))
            {
                Assert.Equal("28P01", (await Assert.ThrowsAsync<PostgresException>(() => stale.OpenAsync())).SqlState);
            }

            var staged = passwordFile + ".new";
            await File.WriteAllTextAsync(staged, second + "\n");
            File.Move(staged, passwordFile, overwrite: true);
            await using (var after = new NpgsqlConnection(AppConnectionString(proxy)))
            {
                await after.OpenAsync();
                Assert.Equal(role, await ScalarAsync(after, "select current_user"));
            }

            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [PostgresFact]
    public async Task Policy_decides_at_connect_time_by_database_and_caller()
    {
        var policy = new JsonObject
        {
            ["Match"] = TestConfig.Match([_pg.ServerName], pathPrefix: "/orders", ports: [_pg.Port]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        };
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, policy: policy, configure: c => c.Policy("other-callers", new JsonObject
        {
            ["Match"] = TestConfig.Match([_pg.ServerName], pathPrefix: "/postgres", ports: [_pg.Port]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            ["Caller"] = new JsonObject { ["Uids"] = new JsonArray(54321) },
        }));
        await using (proxy)
        using (config)
        {
            await using (var allowed = new NpgsqlConnection(AppConnectionString(proxy)))
            {
                await allowed.OpenAsync();
            }

            // No policy covers this database.
            await using (var other = new NpgsqlConnection(AppConnectionString(proxy, database: "template1")))
            {
                var error = await Assert.ThrowsAsync<PostgresException>(() => other.OpenAsync());
                Assert.Equal("28000", error.SqlState);
                Assert.Contains("denied by policy: no policy matches", error.MessageText);
            }

            // "/orders" names one database: a name that merely starts with it is not covered.
            await using (var longer = new NpgsqlConnection(AppConnectionString(proxy, database: "orders_admin")))
            {
                var error = await Assert.ThrowsAsync<PostgresException>(() => longer.OpenAsync());
                Assert.Equal("28000", error.SqlState);
                Assert.Contains("no policy matches", error.MessageText);
            }

            // A policy covers it, but for another uid than this test process's.
            await using (var wrongCaller = new NpgsqlConnection(AppConnectionString(proxy, database: "postgres")))
            {
                var error = await Assert.ThrowsAsync<PostgresException>(() => wrongCaller.OpenAsync());
                Assert.Equal("28000", error.SqlState);
                Assert.Contains("other-callers", error.MessageText);
            }

            var outcomes = proxy.Spans.Where(s => s.DisplayName == "secretless.database.connection").Select(s => (string)s.GetTagItem("secretless.outcome")!).ToArray();
            Assert.Equal(["connected", "denied", "denied", "denied"], outcomes);
            // A denied connection never fetched the credential for itself, nor reached the server as that user.
            Assert.All(proxy.Spans.Where(s => (string?)s.GetTagItem("secretless.outcome") == "denied"), s => Assert.Null(s.GetTagItem("secretless.database.user")));
        }
    }

    [PostgresFact]
    public async Task A_policy_for_another_login_credential_does_not_admit_this_listener()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, policy: new JsonObject
        {
            ["Match"] = TestConfig.Match([_pg.ServerName], ports: [_pg.Port]),
            ["Credential"] = "admin-login",
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        }, configure: c => c.Credential("admin-login", new JsonObject { ["Source"] = "File", ["Path"] = c.SecretFile("admin-password", "unused"), ["Username"] = "postgres" }));
        await using (proxy)
        using (config)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
            var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
            Assert.Equal("28000", error.SqlState);
            Assert.Contains("is for logins with credential 'admin-login', and this listener logs in with 'db-login'", error.MessageText);
        }
    }

    [PostgresFact]
    public async Task A_caller_refused_by_the_admin_logins_policy_never_logs_in_as_admin_through_a_wider_policy()
    {
        // One server, two listeners: "reader" logs in as app_scram, "admin" as the superuser.
        // orders-admin names the admin login and lets in only uid 54321 (not this test process);
        // orders-read names no credential.
        using var config = new TestConfig();
        var tls = new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _pg.CaFile };
        config.PostgresListener("reader", _pg.ServerName + ":" + _pg.Port, "read-login", tls)
            .PostgresListener("admin", _pg.ServerName + ":" + _pg.Port, "admin-login", tls.DeepClone().AsObject())
            .Credential("read-login", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("read-password", _pg.ScramPassword), ["Username"] = PostgresServer.ScramUser })
            .Credential("admin-login", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("admin-password", _pg.SuperuserPassword), ["Username"] = PostgresServer.Superuser })
            .Policy("orders-admin", new JsonObject
            {
                ["Match"] = TestConfig.Match([_pg.ServerName], ports: [_pg.Port]),
                ["Credential"] = "admin-login",
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
                ["Caller"] = new JsonObject { ["Uids"] = new JsonArray(54321) },
            })
            .Policy("orders-read", new JsonObject
            {
                ["Match"] = TestConfig.Match([_pg.ServerName], ports: [_pg.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        await using var proxy = await ProxyHarness.StartAsync(config.Write());
        proxy.NeverEmit(_pg.ScramPassword, _pg.SuperuserPassword);

        string ConnectionString(string listener) =>
            $"Host=127.0.0.1;Port={proxy.App.GetListenerEndPoint(listener).Port};Database={PostgresServer.Database};Username=the-app;Pooling=false;Timeout=15;SSL Mode=Disable;Gss Encryption Mode=Disable";

        await using (var admin = new NpgsqlConnection(ConnectionString("admin")))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => admin.OpenAsync());
            _output.WriteLine(error.Severity + " " + error.SqlState + " " + error.MessageText);
            Assert.Equal("FATAL", error.Severity);
            Assert.Equal("28000", error.SqlState);
            // "does not allow the calling process's uid" (or, were this process not attested, "needs an attested calling process").
            Assert.Contains("denied by policy: policy orders-admin does not allow this request: its Caller condition", error.MessageText);
        }

        await using (var reader = new NpgsqlConnection(ConnectionString("reader")))
        {
            await reader.OpenAsync();
            Assert.Equal(PostgresServer.ScramUser, await ScalarAsync(reader, "select current_user"));
        }

        var connections = proxy.Spans.Where(s => s.DisplayName == "secretless.database.connection").ToArray();
        Assert.Equal(["denied", "connected"], connections.Select(s => (string)s.GetTagItem("secretless.outcome")!));
        Assert.Equal(["orders-admin", "orders-read"], connections.Select(s => (string)s.GetTagItem("secretless.policy")!));
        // The refused connection never logged in as anyone.
        Assert.Null(connections[0].GetTagItem("secretless.database.user"));
        Assert.Equal(PostgresServer.ScramUser, connections[1].GetTagItem("secretless.database.user"));
    }

    [PostgresFact]
    public async Task Without_a_verified_server_the_proxy_answers_only_scram()
    {
        // Tls Mode Require accepts any certificate, so whoever answers could ask for the password in
        // cleartext or an MD5 response to its own salt: both are refused; SCRAM (tested above) works.
        foreach (var (user, password, method) in new[] { (PostgresServer.Md5User, _pg.Md5Password, "an MD5 response"), (PostgresServer.CleartextUser, _pg.CleartextPassword, "the password in cleartext") })
        {
            var (proxy, config, _) = await StartProxyAsync(user, password, tls: new JsonObject { ["Mode"] = "Require" });
            await using (proxy)
            using (config)
            {
                await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
                var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
                Assert.Equal("28000", error.SqlState);
                Assert.Contains("asked for " + method + ", and its certificate is not verified", error.MessageText);
                await proxy.AssertNoSecretEmittedAsync();
            }
        }
    }

    [PostgresFact]
    public async Task Malformed_oversized_and_abandoned_handshakes_leave_the_proxy_serving_others()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword);
        await using (proxy)
        using (config)
        {
            var endpoint = proxy.App.GetListenerEndPoint("db");

            // A startup packet that claims 100 MB: refused by length before anything is buffered.
            var oversized = await ExchangeAsync(endpoint, Startup(length: 100_000_000, code: 196608, []));
            Assert.Equal((byte)'E', oversized[0]);
            Assert.Contains("invalid startup packet length", System.Text.Encoding.UTF8.GetString(oversized));

            // A well-sized packet whose parameters are not terminated.
            var garbage = await ExchangeAsync(endpoint, Startup(length: null, code: 196608, "user\0x"u8.ToArray()));
            Assert.Equal((byte)'E', garbage[0]);
            Assert.Contains("08P01", System.Text.Encoding.UTF8.GetString(garbage));

            // Protocol 2 (long gone) gets the server's answer.
            var old = await ExchangeAsync(endpoint, Startup(length: null, code: 2 << 16, "user\0x\0\0"u8.ToArray()));
            Assert.Contains("unsupported frontend protocol", System.Text.Encoding.UTF8.GetString(old));

            // Clients that disconnect mid-handshake: after half a length word, after an SSLRequest, mid-packet.
            foreach (var partial in new[] { new byte[] { 0, 0 }, Startup(length: 8, code: 80877103, []), Startup(length: 200, code: 196608, "user\0"u8.ToArray()) })
            {
                using var client = new TcpClient();
                await client.ConnectAsync(endpoint);
                await client.GetStream().WriteAsync(partial);
            }

            // Many at once, while a real client logs in and works.
            var abandoned = Enumerable.Range(0, 20).Select(async _ =>
            {
                using var client = new TcpClient();
                await client.ConnectAsync(endpoint);
                await client.GetStream().WriteAsync(Startup(length: 300, code: 196608, "user\0"u8.ToArray()));
            }).ToArray();
            await Task.WhenAll(abandoned);

            await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
            await connection.OpenAsync();
            Assert.Equal(PostgresServer.ScramUser, await ScalarAsync(connection, "select current_user"));
        }
    }

    [PostgresFact]
    public async Task A_server_certificate_for_another_name_fails_verification_with_a_clear_error()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, tls: new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _pg.CaFile, ["ServerName"] = "db.elsewhere.example" });
        await using (proxy)
        using (config)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
            var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
            Assert.Equal("08006", error.SqlState);
            Assert.Contains("TLS with the database server", error.MessageText);
            Assert.Equal("upstream-tls-failed", Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.outcome"));
        }

        // Without the test CA the server's certificate is not trusted at all.
        var (untrusted, untrustedConfig, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, tls: new JsonObject { ["Mode"] = "VerifyFull" });
        await using (untrusted)
        using (untrustedConfig)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(untrusted));
            Assert.Equal("08006", (await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync())).SqlState);
        }

        // A CaFile pins the database's CA: another CA's file does not vouch for this server.
        using var otherCaDirectory = new TestConfig();
        using var otherCa = new TestPki(otherCaDirectory.Directory);
        var (pinned, pinnedConfig, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, tls: new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = otherCa.CaFile });
        await using (pinned)
        using (pinnedConfig)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(pinned));
            Assert.Equal("08006", (await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync())).SqlState);
        }

        // Require: encrypted, not verified (as libpq's sslmode=require).
        var (require, requireConfig, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, tls: new JsonObject { ["Mode"] = "Require" });
        await using (require)
        using (requireConfig)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(require));
            await connection.OpenAsync();
            Assert.Equal(true, await ScalarAsync(connection, "select ssl from pg_stat_ssl where pid = pg_backend_pid()"));
        }
    }

    [PostgresFact]
    public async Task An_unavailable_credential_or_an_unreachable_server_is_a_clean_error()
    {
        var (proxy, config, passwordFile) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword);
        await using (proxy)
        using (config)
        {
            File.Delete(passwordFile);
            await using var connection = new NpgsqlConnection(AppConnectionString(proxy));
            var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
            Assert.Equal("57P03", error.SqlState);
            Assert.Contains("policy 'orders-db' needs credential 'db-login', which is unavailable", error.MessageText);
        }

        using var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        var deadPort = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        var (dead, deadConfig, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, policy: new JsonObject
        {
            ["Match"] = TestConfig.Match(["127.0.0.1"], ports: [deadPort]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        }, configure: c => c.Section["Listeners"]!["db"]!["Upstream"] = "127.0.0.1:" + deadPort);
        await using (dead)
        using (deadConfig)
        {
            await using var connection = new NpgsqlConnection(AppConnectionString(dead));
            var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
            Assert.Equal("08006", error.SqlState);
            Assert.Contains("could not connect to the database server 127.0.0.1:" + deadPort, error.MessageText);
        }
    }

    [PostgresFact]
    public async Task An_http_request_matching_a_database_policy_is_refused()
    {
        var (proxy, config, _) = await StartProxyAsync(PostgresServer.ScramUser, _pg.ScramPassword, configure: c => c.RouteListener("api", "http://" + _pg.ServerName + ":" + _pg.Port));
        await using (proxy)
        using (config)
        {
            var (response, body) = await proxy.GetAsync("api", "/");
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains("authorizes database connections only", body);
        }
    }

    /// <summary>Sends raw bytes and returns everything the proxy answered before closing.</summary>
    private static async Task<byte[]> ExchangeAsync(IPEndPoint endpoint, byte[] bytes)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(endpoint);
        var stream = client.GetStream();
        await stream.WriteAsync(bytes);
        using var answer = new MemoryStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await stream.CopyToAsync(answer, timeout.Token);
        return answer.ToArray();
    }

    private static byte[] Startup(int? length, int code, byte[] payload)
    {
        var packet = new byte[8 + payload.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(packet, length ?? packet.Length);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), code);
        payload.CopyTo(packet, 8);
        return packet;
    }
}
