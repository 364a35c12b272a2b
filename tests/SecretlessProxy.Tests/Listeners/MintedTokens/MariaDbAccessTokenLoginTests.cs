using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.MintedTokens;

/// <summary>
/// A MySql listener logging in to a real MariaDB 10.11 over verified TLS with an access token as the
/// password, as Azure Database for MySQL (Microsoft Entra) and Cloud SQL for MySQL IAM database
/// authentication (Google token exchange) take it: the unmodified mariadb client holding no password
/// lands as the user whose password the test set to the token the fake issuer handed the proxy.
/// </summary>
[Collection(MariaDbServer.Collection)]
public sealed class MariaDbAccessTokenLoginTests
{
    private readonly MariaDbServer _db;
    private readonly ITestOutputHelper _output;

    public MariaDbAccessTokenLoginTests(MariaDbServer db, ITestOutputHelper output)
    {
        _db = db;
        _output = output;
    }

    [MariaDbFact]
    public Task Entra_token_for_azure_database_for_mysql_logs_the_mariadb_client_in() => LogsInAsync(AccessTokenIssuer.Entra);

    [MariaDbFact]
    public Task Google_token_for_cloud_sql_iam_logs_the_mariadb_client_in() => LogsInAsync(AccessTokenIssuer.Google);

    [MariaDbFact]
    public async Task A_token_endpoint_answering_garbage_is_refused_as_token_minting()
    {
        using var config = new TestConfig();
        using var issuer = AccessTokenIssuer.Google(config);
        issuer.AnswerGarbage();
        await using var proxy = await StartAsync(config, issuer, "token_app_" + Guid.NewGuid().ToString("N")[..8]);

        var refused = await MariaDbAsync(proxy, "select 1");

        _output.WriteLine(refused.ToString());
        Assert.StartsWith("ERROR 1105 (HY000)", refused.Error, StringComparison.Ordinal);
        Assert.Contains("policy 'orders-db' needs credential 'db-login', which is unavailable: ", refused.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("captive portal", refused.Error, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    private async Task LogsInAsync(Func<TestConfig, AccessTokenIssuer> issuerFor)
    {
        using var config = new TestConfig();
        using var issuer = issuerFor(config);
        var user = "token_app_" + Guid.NewGuid().ToString("N")[..8];
        await using var proxy = await StartAsync(config, issuer, user);

        var rejected = await MariaDbAsync(proxy, "select current_user()");
        _output.WriteLine(rejected.ToString());
        Assert.Contains("the proxy's login to " + Upstream + " as '" + user + "' with credential 'db-login' failed: Access denied", rejected.Error, StringComparison.Ordinal);

        var token = Assert.Single(issuer.Issued);
        await _db.SetPasswordAsync(user, token);

        var query = await MariaDbAsync(proxy, "select current_user(); show session status like 'Ssl_version'");
        Assert.True(query.ExitCode == 0, query.ToString());
        var lines = query.Output.Trim().Split('\n');
        Assert.Equal(user + "@%", lines[0]);
        Assert.StartsWith("Ssl_version\tTLSv1.", lines[1], StringComparison.Ordinal);
        Assert.DoesNotContain(token, rejected.Error + query.Output + query.Error, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    private string Upstream => _db.ServerName + ":" + _db.Port;

    private async Task<ProxyHarness> StartAsync(TestConfig config, AccessTokenIssuer issuer, string user)
    {
        await _db.ExecAsRootAsync($"CREATE USER '{user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('not-the-token-{Guid.NewGuid():N}')");
        issuer.Configure(config, user);
        config.Section["Listeners"]!["db"] = new JsonObject
        {
            ["Mode"] = "MySql",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = Upstream,
            ["Credential"] = "db-login",
            ["Tls"] = new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _db.CaFile },
        };
        config.Policy("orders-db", new JsonObject
        {
            ["Match"] = TestConfig.Match([_db.ServerName], ports: [_db.Port]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        });
        var proxy = await ProxyHarness.StartAsync(config.Write(), issuer.Time);
        proxy.NeverEmit(() => issuer.Secrets);
        return proxy;
    }

    private static Task<ExternalClient.Result> MariaDbAsync(ProxyHarness proxy, string sql) =>
        ExternalClient.RunAsync(MariaDbServer.Client,
            ["--no-defaults", "-h", "127.0.0.1", "--protocol=TCP", "-P", proxy.App.GetListenerEndPoint("db").Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-u", "whoever", "--skip-password", "--skip-ssl", "--batch", "--skip-column-names", "-e", sql]);
}
