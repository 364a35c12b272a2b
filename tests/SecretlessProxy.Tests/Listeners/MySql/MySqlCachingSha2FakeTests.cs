using System.Buffers;
using System.Text.Json.Nodes;
using SecretlessProxy.Listeners.MySql;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Listeners.MySql;

/// <summary>
/// MySQL 8's caching_sha2_password against a PROTOCOL FAKE (<see cref="FakeMySql8CachingSha2Server"/>,
/// built from the exchange the MySQL protocol documentation publishes), because a real MySQL 8 cannot
/// run here: the fast path, full authentication over verified TLS, the RSA exchange only when the
/// listener allows it, and the refusal to send the password otherwise.
/// </summary>
public sealed class MySqlCachingSha2FakeTests
{
    private const string User = "app_sha2";

    private static async Task<(ProxyHarness Proxy, TestConfig Config)> StartProxyAsync(FakeMySql8CachingSha2Server fake, string password, JsonObject tls, JsonObject? mysql = null)
    {
        var config = new TestConfig();
        var passwordFile = config.SecretFile("db-password", password);
        var listener = new JsonObject
        {
            ["Mode"] = "MySql",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = "localhost:" + fake.Port,
            ["Credential"] = "db-login",
            ["Tls"] = tls,
        };
        if (mysql is not null)
        {
            listener["MySql"] = mysql;
        }

        config.Section["Listeners"]!["db"] = listener;
        config.Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = passwordFile, ["Username"] = User })
            .Policy("sha2-db", new JsonObject
            {
                ["Match"] = TestConfig.Match(["localhost"], ports: [fake.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        var proxy = await ProxyHarness.StartAsync(config.Write());
        proxy.NeverEmit(password);
        return (proxy, config);
    }

    private static async Task<byte[]> AppLogInAsync(ProxyHarness proxy, byte[]? attributes = null)
    {
        await using var client = await RawMySqlClient.ConnectAsync(proxy.App.GetListenerEndPoint("db").Port);
        return await client.LogInAsync("the-app", "orders", attributes);
    }

    [Fact]
    public async Task Fast_path_and_full_authentication_over_verified_tls_log_in()
    {
        var password = "sha2-" + Guid.NewGuid().ToString("N");
        using var directory = new TestConfig();
        await using var fake = new FakeMySql8CachingSha2Server(directory.Directory, User, password);
        var (proxy, config) = await StartProxyAsync(fake, password, new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = fake.CaFile });
        await using (proxy)
        using (config)
        {
            var attributes = new ArrayBufferWriter<byte>();
            foreach (var text in new[] { "program_name", "orders-app", "_client_name", "raw-test" })
            {
                MySqlWire.WriteLengthEncoded(attributes, (ulong)text.Length);
                attributes.Write(System.Text.Encoding.ASCII.GetBytes(text));
            }

            Assert.Equal(MySqlWire.OkHeader, (await AppLogInAsync(proxy, attributes.WrittenSpan.ToArray()))[0]);
            // The server saw the credential's user, the app's schema and the app's connection attributes as they were.
            Assert.Equal(User, fake.LastResponse!.User);
            Assert.Equal("orders", fake.LastResponse.Schema);
            Assert.Equal(attributes.WrittenSpan.ToArray(), fake.LastResponse.ConnectionAttributes);
            Assert.True(fake.LastResponse.Capabilities.HasFlag(MySqlCapabilities.Ssl));
            fake.CacheHit = false;
            Assert.Equal(MySqlWire.OkHeader, (await AppLogInAsync(proxy))[0]);
            Assert.Equal(["fast", "full-tls"], fake.Logins);

            var spans = proxy.Spans.Where(s => s.DisplayName == "secretless.database.connection").ToList();
            Assert.All(spans, s => Assert.Equal(MySqlWire.CachingSha2Password, s.GetTagItem("secretless.database.auth_method")));
            Assert.All(spans, s => Assert.Equal("mysql", s.GetTagItem("db.system.name")));
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [Fact]
    public async Task A_wrong_password_is_1045_from_the_server()
    {
        using var directory = new TestConfig();
        await using var fake = new FakeMySql8CachingSha2Server(directory.Directory, User, "the-right-one");
        var (proxy, config) = await StartProxyAsync(fake, "sha2-wrong-" + Guid.NewGuid().ToString("N"), new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = fake.CaFile });
        await using (proxy)
        using (config)
        {
            var reply = await AppLogInAsync(proxy);
            Assert.Equal(MySqlWire.ErAccessDenied, RawMySqlClient.ErrorCode(reply));
            await proxy.AssertNoSecretEmittedAsync();
        }
    }

    [Fact]
    public async Task Without_tls_full_authentication_is_refused_unless_rsa_key_retrieval_is_allowed()
    {
        var password = "sha2-" + Guid.NewGuid().ToString("N");
        using var directory = new TestConfig();
        await using var fake = new FakeMySql8CachingSha2Server(directory.Directory, User, password) { CacheHit = false };

        var (refusing, refusingConfig) = await StartProxyAsync(fake, password, new JsonObject { ["Mode"] = "Disable" });
        await using (refusing)
        using (refusingConfig)
        {
            var reply = await AppLogInAsync(refusing);
            Assert.Equal(MySqlWire.ErNotSupportedAuthMode, RawMySqlClient.ErrorCode(reply));
            Assert.Contains("the connection has no TLS", System.Text.Encoding.UTF8.GetString(reply));
            Assert.Equal("weak-exchange-refused", Assert.Single(refusing.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.outcome"));
            await refusing.AssertNoSecretEmittedAsync();
        }

        var (allowing, allowingConfig) = await StartProxyAsync(fake, password, new JsonObject { ["Mode"] = "Disable" }, new JsonObject { ["AllowPublicKeyRetrieval"] = true });
        await using (allowing)
        using (allowingConfig)
        {
            Assert.Equal(MySqlWire.OkHeader, (await AppLogInAsync(allowing))[0]);
            await allowing.AssertNoSecretEmittedAsync();
        }

        // The first login stopped at "perform full authentication"; the second sent the password RSA-encrypted.
        await Poll.UntilAsync(() => fake.Logins.Count == 2, "two logins recorded");
        Assert.StartsWith("dropped", fake.Logins[0], StringComparison.Ordinal);
        Assert.Equal("full-rsa", fake.Logins[1]);
    }
}
