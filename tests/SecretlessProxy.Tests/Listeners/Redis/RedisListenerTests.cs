using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using SecretlessProxy.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace SecretlessProxy.Tests.Listeners.Redis;

/// <summary>
/// The Redis listener against a real redis-server 7 (ACL users, TLS port from the test CA): unmodified
/// clients (redis-cli, StackExchange.Redis) holding no password work as the credential's ACL user,
/// their own AUTH and HELLO AUTH never reach the server, and every failure reaches the app as a
/// Redis error. Each proxy is leak-scanned for every password in play.
/// </summary>
[Collection(RedisServer.Collection)]
public sealed class RedisListenerTests
{
    private const string Listener = "cache";
    private readonly RedisServer _redis;

    public RedisListenerTests(RedisServer redis)
    {
        _redis = redis;
    }

    private JsonObject VerifyFull => new() { ["Mode"] = "VerifyFull", ["CaFile"] = _redis.CaFile };

    /// <summary>
    /// A proxy with one Redis listener "cache" logging in as <paramref name="user"/> with the password in
    /// a file, to the server's TLS port (VerifyFull against the test CA) unless <paramref name="tls"/> says Disable.
    /// </summary>
    private async Task<(ProxyHarness Proxy, TestConfig Config, string PasswordFile)> StartProxyAsync(string user, string password, JsonObject? tls = null, JsonObject? policy = null, Action<TestConfig>? configure = null)
    {
        tls ??= VerifyFull;
        var port = (string?)tls["Mode"] == "Disable" ? _redis.Port : _redis.TlsPort;
        var config = new TestConfig();
        var passwordFile = config.SecretFile("redis-password", password);
        config.Section["Listeners"]![Listener] = new JsonObject
        {
            ["Mode"] = "Redis",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = _redis.ServerName + ":" + port,
            ["Credential"] = "cache-login",
            ["Tls"] = tls,
        };
        config.Credential("cache-login", new JsonObject { ["Source"] = "File", ["Path"] = passwordFile, ["Username"] = user })
            .Policy("cache", policy ?? new JsonObject
            {
                ["Match"] = TestConfig.Match([_redis.ServerName], ports: [port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        configure?.Invoke(config);
        var proxy = await ProxyHarness.StartAsync(config.Write());
        proxy.NeverEmit(_redis.AdminPassword, _redis.AppPassword, _redis.ReadPassword, password);
        return (proxy, config, passwordFile);
    }

    private static int PortOf(ProxyHarness proxy) => proxy.App.GetListenerEndPoint(Listener).Port;

    /// <summary>redis-cli against the proxy with no password; extra options before the command.</summary>
    private static async Task<ExternalClient.Result> CliAsync(ProxyHarness proxy, params string[] arguments)
    {
        var result = await ExternalClient.RunAsync(RedisServer.CliBinary, ["-h", "127.0.0.1", "-p", PortOf(proxy).ToString(), "--no-auth-warning", .. arguments]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    private static ConfigurationOptions ClientOptions(ProxyHarness proxy, RedisProtocol protocol, string? user = null, string? password = null) => new()
    {
        EndPoints = { new IPEndPoint(IPAddress.Loopback, PortOf(proxy)) },
        Protocol = protocol,
        User = user,
        Password = password,
        AbortOnConnectFail = true,
        ConnectTimeout = 15000,
        SyncTimeout = 15000,
        AsyncTimeout = 15000,
        ConnectRetry = 0,
    };

    [RedisFact]
    public async Task Redis_cli_without_a_password_works_as_the_credentials_acl_user_over_verified_tls()
    {
        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword);
        await using (proxy)
        using (config)
        {
            Assert.Equal(RedisServer.AppUser, (await CliAsync(proxy, "ACL", "WHOAMI")).Output.Trim());
            Assert.Equal("OK", (await CliAsync(proxy, "SET", "cli:key", "from redis-cli")).Output.Trim());
            Assert.Equal("from redis-cli", (await CliAsync(proxy, "GET", "cli:key")).Output.Trim());

            // RESP3: redis-cli -3 sends HELLO 3, which the server answers through the proxy.
            var resp3 = await CliAsync(proxy, "-3", "HGETALL", "cli:none");
            Assert.DoesNotContain("ERR", resp3.Output);
            Assert.Equal(RedisServer.AppUser, (await CliAsync(proxy, "-3", "ACL", "WHOAMI")).Output.Trim());

            // The server's side of the proxy's connection: the ACL user, over the TLS port.
            var client = (await CliAsync(proxy, "CLIENT", "INFO")).Output;
            Assert.Contains("user=" + RedisServer.AppUser, client);
            Assert.Contains("laddr=127.0.0.1:" + _redis.TlsPort, client);

            var spans = proxy.Spans.Where(s => s.DisplayName == "secretless.database.connection").ToArray();
            Assert.Equal(6, spans.Length);
            var span = spans[0];
            Assert.Equal("redis", span.GetTagItem("db.system.name"));
            Assert.Equal("0", span.GetTagItem("db.namespace"));
            Assert.Equal("connected", span.GetTagItem("secretless.outcome"));
            Assert.Equal("cache", span.GetTagItem("secretless.policy"));
            Assert.Equal("cache-login", span.GetTagItem("secretless.credential.name"));
            Assert.Equal(RedisServer.AppUser, span.GetTagItem("secretless.database.user"));
            Assert.Equal("acl", span.GetTagItem("secretless.database.auth_method"));
            Assert.IsType<double>(span.GetTagItem("secretless.handshake.duration_ms"));

            using var admin = new HttpClient();
            var decisions = JsonNode.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=10")))!["decisions"]!.AsArray();
            var record = decisions[0]!;
            Assert.Equal("redis", (string?)record["destination"]!["scheme"]);
            Assert.Equal("/0", (string?)record["destination"]!["path"]);
            Assert.Equal(RedisServer.AppUser, (string?)record["databaseUser"]);
            Assert.Equal("connected", (string?)record["outcome"]);
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [RedisFact]
    public async Task StackExchange_redis_over_resp2_and_resp3_pipelines_transacts_and_subscribes()
    {
        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword);
        await using (proxy)
        using (config)
        {
            foreach (var protocol in new[] { RedisProtocol.Resp2, RedisProtocol.Resp3 })
            {
                await using var mux = await ConnectionMultiplexer.ConnectAsync(ClientOptions(proxy, protocol));
                var db = mux.GetDatabase();
                var prefix = "se:" + protocol + ":";

                // Pipelined: a thousand commands in flight on one connection, replies matched in order.
                var sets = Enumerable.Range(0, 1000).Select(i => db.StringSetAsync(prefix + i, "v" + i)).ToArray();
                Assert.All(await Task.WhenAll(sets), Assert.True);
                var gets = Enumerable.Range(0, 1000).Select(i => db.StringGetAsync(prefix + i)).ToArray();
                var values = await Task.WhenAll(gets);
                Assert.Equal(Enumerable.Range(0, 1000).Select(i => "v" + i), values.Select(v => (string?)v));

                // A large value, split across many reads.
                var large = new string('L', 3 * 1024 * 1024);
                Assert.True(await db.StringSetAsync(prefix + "large", large));
                Assert.Equal(large, (string?)await db.StringGetAsync(prefix + "large"));

                // MULTI/EXEC with a WATCH condition.
                var transaction = db.CreateTransaction();
                transaction.AddCondition(Condition.KeyNotExists(prefix + "counter"));
                var incremented = transaction.StringIncrementAsync(prefix + "counter", 5);
                var appended = transaction.ListRightPushAsync(prefix + "list", "x");
                Assert.True(await transaction.ExecuteAsync());
                Assert.Equal(5, await incremented);
                Assert.Equal(1, await appended);

                // Pub/sub through the proxy.
                var subscriber = mux.GetSubscriber();
                var channel = RedisChannel.Literal(prefix + "news");
                var queue = await subscriber.SubscribeAsync(channel);
                Assert.Equal(1, await subscriber.PublishAsync(channel, "hello " + protocol));
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                Assert.Equal("hello " + protocol, (string?)(await queue.ReadAsync(timeout.Token)).Message);

                var whoami = await db.ExecuteAsync("ACL", "WHOAMI");
                Assert.Equal(RedisServer.AppUser, (string?)whoami);
                Assert.Equal(protocol, mux.GetServer(mux.GetEndPoints()[0]).Protocol);
            }

            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [RedisFact]
    public async Task The_apps_own_auth_and_hello_auth_never_reach_the_server_nor_change_the_user()
    {
        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword);
        await using (proxy)
        using (config)
        {
            await _redis.AdminAsync("ACL", "LOG", "RESET");
            var appWrong = "app-own-password-" + Guid.NewGuid().ToString("N")[..8];
            proxy.NeverEmit(appWrong);

            // StackExchange.Redis configured with the read-only user and a wrong password: RESP2 sends
            // AUTH reader pw, RESP3 sends HELLO 3 AUTH reader pw SETNAME ...; both succeed as "app".
            foreach (var protocol in new[] { RedisProtocol.Resp2, RedisProtocol.Resp3 })
            {
                await using var mux = await ConnectionMultiplexer.ConnectAsync(ClientOptions(proxy, protocol, RedisServer.ReadUser, appWrong));
                var db = mux.GetDatabase();
                Assert.Equal(RedisServer.AppUser, (string?)await db.ExecuteAsync("ACL", "WHOAMI"));
                // The read-only user could not write; the connection's user can.
                Assert.True(await db.StringSetAsync("auth:" + protocol, "written"));
            }

            // redis-cli with a user and password of its own (AUTH, then HELLO 3 with -3).
            Assert.Equal(RedisServer.AppUser, (await CliAsync(proxy, "--user", RedisServer.ReadUser, "--pass", appWrong, "ACL", "WHOAMI")).Output.Trim());
            Assert.Equal(RedisServer.AppUser, (await CliAsync(proxy, "-3", "--user", "default", "--pass", _redis.AdminPassword, "ACL", "WHOAMI")).Output.Trim());

            // Pipelined by hand: the app's logins answered in their place among the other replies,
            // and the real read user's password does not switch the connection either.
            using var raw = new TcpClient();
            await raw.ConnectAsync(IPAddress.Loopback, PortOf(proxy));
            var stream = raw.GetStream();
            var pipeline = string.Concat(
                Command("SET", "pipe:k", "v1"),
                Command("AUTH", RedisServer.ReadUser, _redis.ReadPassword),
                Command("GET", "pipe:k"),
                Command("AUTH", appWrong),
                Command("HELLO", "2", "AUTH", RedisServer.ReadUser, _redis.ReadPassword, "SETNAME", "pipelined"),
                Command("ACL", "WHOAMI"),
                Command("MULTI"),
                Command("AUTH", "default", _redis.AdminPassword),
                Command("INCR", "pipe:n"),
                Command("EXEC"),
                Command("RESET"),
                "acl whoami\r\n",
                Command("CLIENT", "GETNAME"));
            await stream.WriteAsync(Encoding.UTF8.GetBytes(pipeline));
            var reader = new RespReplyReader(stream);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            Assert.Equal("+OK", await reader.ReadAsync(timeout.Token));
            Assert.Equal("+OK", await reader.ReadAsync(timeout.Token));
            Assert.Equal("v1", await reader.ReadAsync(timeout.Token));
            Assert.Equal("+OK", await reader.ReadAsync(timeout.Token));
            var hello = Assert.IsType<List<object?>>(await reader.ReadAsync(timeout.Token));
            Assert.Contains("server", hello);
            Assert.Equal(RedisServer.AppUser, await reader.ReadAsync(timeout.Token));
            Assert.Equal("+OK", await reader.ReadAsync(timeout.Token));
            Assert.Equal("+QUEUED", await reader.ReadAsync(timeout.Token));
            Assert.Equal("+QUEUED", await reader.ReadAsync(timeout.Token));
            var exec = Assert.IsType<List<object?>>(await reader.ReadAsync(timeout.Token));
            Assert.Equal("+OK", exec[0]);
            var reset = Assert.IsType<string>(await reader.ReadAsync(timeout.Token));
            Assert.StartsWith("-ERR unknown command 'RESET (refused by secretless-proxy", reset);
            Assert.Equal(RedisServer.AppUser, await reader.ReadAsync(timeout.Token));
            Assert.Equal("pipelined", await reader.ReadAsync(timeout.Token));

            // The server never saw a failed login: nothing in its ACL log.
            Assert.Equal(string.Empty, await _redis.AdminAsync("ACL", "LOG"));
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [RedisFact]
    public async Task A_wrong_credential_gives_the_app_a_redis_error_without_the_password()
    {
        var wrong = "redis-wrong-password-5be0c2d1";
        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, wrong);
        await using (proxy)
        using (config)
        {
            var cli = await CliAsync(proxy, "PING");
            Assert.Contains("WRONGPASS secretless-proxy: the proxy's login to " + _redis.ServerName + ":" + _redis.TlsPort + " as \"" + RedisServer.AppUser + "\" with credential 'cache-login' failed", cli.Output + cli.Error);
            Assert.DoesNotContain(wrong, cli.Output + cli.Error);

            // Not aborting on the failed connect, so that the multiplexer is ours to dispose and no
            // background reconnect outlives this proxy (and reaches whatever takes its port next).
            var options = ClientOptions(proxy, RedisProtocol.Resp2);
            options.AbortOnConnectFail = false;
            options.ConnectTimeout = 3000;
            options.BacklogPolicy = BacklogPolicy.FailFast;
            await using (var mux = await ConnectionMultiplexer.ConnectAsync(options))
            {
                Assert.False(mux.IsConnected);
                var error = await Assert.ThrowsAnyAsync<RedisException>(() => mux.GetDatabase().PingAsync());
                Assert.DoesNotContain(wrong, error.ToString());
                Assert.DoesNotContain(wrong, mux.GetStatus());
            }

            // StackExchange.Redis closes its second connection when the first fails: that one may end client-aborted.
            var outcomes = proxy.Spans.Where(s => s.DisplayName == "secretless.database.connection").Select(s => (string?)s.GetTagItem("secretless.outcome")).ToArray();
            Assert.Equal("login-failed", outcomes[0]);
            Assert.All(outcomes, o => Assert.Contains(o, new[] { "login-failed", "client-aborted" }));
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [RedisFact]
    public async Task A_rotated_credential_is_used_by_the_next_connection()
    {
        var user = "rotating_" + Guid.NewGuid().ToString("N")[..8];
        var first = "redis-rotate-first-" + Guid.NewGuid().ToString("N")[..12];
        var second = "redis-rotate-second-" + Guid.NewGuid().ToString("N")[..12];
        await _redis.SetUserAsync(user, first);
        var (proxy, config, passwordFile) = await StartProxyAsync(user, first);
        await using (proxy)
        using (config)
        {
            proxy.NeverEmit(second);
            Assert.Equal(user, (await CliAsync(proxy, "ACL", "WHOAMI")).Output.Trim());

            // The server's password changes first (as a rotation job does), then the secret file.
            await _redis.SetUserAsync(user, second);
            Assert.Contains("WRONGPASS", (await CliAsync(proxy, "ACL", "WHOAMI")).Output);

            var staged = passwordFile + ".new";
            await File.WriteAllTextAsync(staged, second + "\n");
            File.Move(staged, passwordFile, overwrite: true);
            Assert.Equal(user, (await CliAsync(proxy, "ACL", "WHOAMI")).Output.Trim());
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [RedisFact]
    public async Task Policy_decides_at_connect_time_and_a_refusal_is_a_noperm_error()
    {
        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, policy: new JsonObject
        {
            ["Match"] = TestConfig.Match([_redis.ServerName], ports: [_redis.TlsPort]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            ["Caller"] = new JsonObject { ["Uids"] = new JsonArray(54321) },
        });
        await using (proxy)
        using (config)
        {
            var cli = await CliAsync(proxy, "ACL", "WHOAMI");
            Assert.Contains("NOPERM secretless-proxy: denied by policy: policy cache does not allow this request: its Caller condition", cli.Output + cli.Error);
            var span = Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection");
            Assert.Equal("denied", span.GetTagItem("secretless.outcome"));
            // Never logged in as anyone.
            Assert.Null(span.GetTagItem("secretless.database.user"));
        }

        // A policy for database 1 does not cover the connection (every connection starts in database 0).
        var (other, otherConfig, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, policy: new JsonObject
        {
            ["Match"] = TestConfig.Match([_redis.ServerName], pathPrefix: "/1", ports: [_redis.TlsPort]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        });
        await using (other)
        using (otherConfig)
        {
            var cli = await CliAsync(other, "PING");
            Assert.Contains("NOPERM secretless-proxy: denied by policy: no policy matches", cli.Output + cli.Error);
        }
    }

    [RedisFact]
    public async Task Malformed_and_abandoned_input_ends_only_that_connection()
    {
        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword);
        await using (proxy)
        using (config)
        {
            var endpoint = new IPEndPoint(IPAddress.Loopback, PortOf(proxy));
            foreach (var (bytes, expected) in new[]
            {
                ("*1\r\n$4\r\nPINGxx", "-ERR Protocol error: expected CRLF after a bulk string"),
                ("*1\r\n$4\r\nAUTH\r\n*2\r\n$4\r\nAUTH\r\n$2\r\npwXX", "-ERR Protocol error: expected CRLF after a bulk string"),
                ("*abc\r\n", "-ERR Protocol error: invalid multibulk length"),
                ("*2\r\n$3\r\nGET\r\n:12\r\n", "-ERR Protocol error: expected '$', got ':'"),
                ("set k \"open\r\n", "-ERR Protocol error: unbalanced quotes in request"),
                (new string('x', 70_000), "-ERR Protocol error: too big inline request"),
            })
            {
                var answer = await ExchangeAsync(endpoint, Encoding.ASCII.GetBytes(bytes));
                Assert.Contains(expected, answer);
            }

            // Clients that go away at every stage: before a byte, mid-command, mid-value.
            foreach (var partial in new[] { string.Empty, "*2\r\n$3\r", "*2\r\n$3\r\nSET\r\n$100\r\nabc", "AUTH half" })
            {
                using var client = new TcpClient();
                await client.ConnectAsync(endpoint);
                await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes(partial));
            }

            Assert.Equal(RedisServer.AppUser, (await CliAsync(proxy, "ACL", "WHOAMI")).Output.Trim());
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [RedisFact]
    public async Task A_socket_that_never_speaks_is_closed_at_the_handshake_timeout_without_a_decision_or_a_login()
    {
        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, configure: c => c.Section["Listeners"]![Listener]!["HandshakeTimeout"] = "00:00:01");
        await using (proxy)
        using (config)
        {
            using var silent = new TcpClient();
            await silent.ConnectAsync(IPAddress.Loopback, PortOf(proxy));
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            Assert.Equal(0, await silent.GetStream().ReadAsync(new byte[16], bound.Token));

            // A port probe costs no policy decision, credential fetch or server connection.
            Assert.DoesNotContain(proxy.Spans, s => s.DisplayName == "secretless.database.connection");
            Assert.Equal(RedisServer.AppUser, (await CliAsync(proxy, "ACL", "WHOAMI")).Output.Trim());
        }
    }

    [RedisFact]
    public async Task A_unix_socket_listener_serves_redis_cli_and_its_caller_conditions_apply()
    {
        foreach (var (uid, expected) in new[] { (-1, RedisServer.AppUser), (54321, "NOPERM secretless-proxy: denied by policy") })
        {
            string? socket = null;
            var policy = new JsonObject
            {
                ["Match"] = TestConfig.Match([_redis.ServerName], ports: [_redis.TlsPort]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            };
            if (uid >= 0)
            {
                policy["Caller"] = new JsonObject { ["Uids"] = new JsonArray(uid) };
            }

            var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, policy: policy, configure: c =>
            {
                socket = Path.Combine(c.Directory, "redis.sock");
                c.Section["Listeners"]![Listener]!["Url"] = "unix:" + socket;
            });
            await using (proxy)
            using (config)
            {
                var cli = await ExternalClient.RunAsync(RedisServer.CliBinary, ["-s", socket!, "ACL", "WHOAMI"]);
                Assert.Contains(expected, cli.Output + cli.Error);
            }
        }
    }

    [RedisFact]
    public async Task Tls_to_the_server_is_verified_and_a_wrong_name_or_ca_is_refused()
    {
        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, tls: new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _redis.CaFile, ["ServerName"] = "cache.elsewhere.example" });
        await using (proxy)
        using (config)
        {
            var cli = await CliAsync(proxy, "PING");
            Assert.Contains("ERR secretless-proxy: TLS with the database server", cli.Output + cli.Error);
            Assert.Equal("upstream-tls-failed", Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.outcome"));
        }

        // Without the test CA the server's certificate is not trusted.
        var (untrusted, untrustedConfig, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, tls: new JsonObject { ["Mode"] = "VerifyFull" });
        await using (untrusted)
        using (untrustedConfig)
        {
            Assert.Contains("TLS with the database server", (await CliAsync(untrusted, "PING")).Output);
        }

        // Require: encrypted, not verified. Disable: the plaintext port.
        foreach (var mode in new[] { "Require", "Disable" })
        {
            var (other, otherConfig, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, tls: new JsonObject { ["Mode"] = mode });
            await using (other)
            using (otherConfig)
            {
                var client = (await CliAsync(other, "CLIENT", "INFO")).Output;
                Assert.Contains("user=" + RedisServer.AppUser, client);
                Assert.Contains("laddr=127.0.0.1:" + (mode == "Disable" ? _redis.Port : _redis.TlsPort), client);
            }
        }
    }

    [RedisFact]
    public async Task An_unreachable_server_or_a_missing_credential_is_a_clean_error()
    {
        using var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        var deadPort = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        var (dead, deadConfig, passwordFile) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, policy: new JsonObject
        {
            ["Match"] = TestConfig.Match(["127.0.0.1"], ports: [deadPort]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        }, configure: c => c.Section["Listeners"]![Listener]!["Upstream"] = "127.0.0.1:" + deadPort);
        await using (dead)
        using (deadConfig)
        {
            Assert.Contains("ERR secretless-proxy: could not connect to the database server 127.0.0.1:" + deadPort, (await CliAsync(dead, "PING")).Output);
            File.Delete(passwordFile);
            Assert.Contains("needs credential 'cache-login', which is unavailable", (await CliAsync(dead, "PING")).Output);
        }
    }

    /// <summary>
    /// A protocol fake, not a real server: Redis before 6 (no ACL users) answers AUTH with two
    /// arguments with its arity error, and the proxy logs in with the password alone; a server that
    /// answers AUTH with something that is no RESP reply gets no session.
    /// </summary>
    [RedisFact]
    public async Task A_server_without_acl_users_gets_auth_with_the_password_alone_and_a_garbled_answer_is_refused()
    {
        using var fake = new TcpListener(IPAddress.Loopback, 0);
        fake.Start();
        var fakePort = ((IPEndPoint)fake.LocalEndpoint).Port;
        var seen = new List<object?>();
        async Task ServeAsync(params string[] answers)
        {
            using var client = await fake.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var reader = new RespReplyReader(stream);
            foreach (var answer in answers)
            {
                seen.Add(await reader.ReadAsync());
                await stream.WriteAsync(Encoding.ASCII.GetBytes(answer));
            }

            // Until the proxy closes.
            _ = await stream.ReadAsync(new byte[1]);
        }

        var (proxy, config, _) = await StartProxyAsync(RedisServer.AppUser, _redis.AppPassword, tls: new JsonObject { ["Mode"] = "Disable" }, policy: new JsonObject
        {
            ["Match"] = TestConfig.Match(["127.0.0.1"], ports: [fakePort]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        }, configure: c => c.Section["Listeners"]![Listener]!["Upstream"] = "127.0.0.1:" + fakePort);
        await using (proxy)
        using (config)
        {
            var legacy = ServeAsync("-ERR wrong number of arguments for 'auth' command\r\n", "+OK\r\n", "+PONG\r\n");
            Assert.Equal("PONG", (await CliAsync(proxy, "PING")).Output.Trim());
            await legacy;
            Assert.Equal(new List<object?> { "AUTH", RedisServer.AppUser, _redis.AppPassword }, seen[0]);
            Assert.Equal(new List<object?> { "AUTH", _redis.AppPassword }, seen[1]);
            Assert.Equal(new List<object?> { "PING" }, seen[2]);
            Assert.Equal("password", Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.database.auth_method"));

            var garbled = ServeAsync("hello there\r\n");
            var cli = await CliAsync(proxy, "PING");
            await garbled;
            Assert.Contains("ERR secretless-proxy: the proxy's login to 127.0.0.1:" + fakePort + " as \"app\" with credential 'cache-login' failed: the server answered AUTH with something other than OK or an error", cli.Output);
            Assert.Equal("handshake-failed", proxy.Spans.Last(s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.outcome"));
        }
    }

    private static string Command(params string[] arguments) => Encoding.UTF8.GetString(SecretlessProxy.Listeners.Redis.RedisWire.Command(arguments));

    /// <summary>Sends raw bytes and returns everything the proxy answered before closing.</summary>
    private static async Task<string> ExchangeAsync(IPEndPoint endpoint, byte[] bytes)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(endpoint);
        var stream = client.GetStream();
        await stream.WriteAsync(bytes);
        using var answer = new MemoryStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await stream.CopyToAsync(answer, timeout.Token);
        return Encoding.UTF8.GetString(answer.ToArray());
    }
}
