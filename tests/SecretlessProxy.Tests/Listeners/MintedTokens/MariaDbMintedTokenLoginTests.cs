using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.MintedTokens;

/// <summary>
/// A MySql listener logging in to a real MariaDB 10.11 over verified TLS with a token minted from the
/// workload's identity (the RDS IAM auth token from a WireMock STS's keys): the server's user has the
/// token botocore computes as its password, and the unmodified mariadb client holding no password
/// lands as that user. Refusals name the part that failed, never the token.
/// </summary>
[Collection(MariaDbServer.Collection)]
public sealed class MariaDbMintedTokenLoginTests : IDisposable
{
    private readonly MariaDbServer _db;
    private readonly ITestOutputHelper _output;
    private readonly TestConfig _config = new();
    private readonly RdsTokenFixture _rds = new();
    private readonly string _user = "rds_app_" + Guid.NewGuid().ToString("N")[..8];

    public MariaDbMintedTokenLoginTests(MariaDbServer db, ITestOutputHelper output)
    {
        _db = db;
        _output = output;
    }

    private string Upstream => _db.ServerName + ":" + _db.Port;

    private async Task<ProxyHarness> StartAsync()
    {
        await _db.ExecAsRootAsync($"CREATE USER '{_user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('not-the-token-{Guid.NewGuid():N}')");
        _rds.Configure(_config, Upstream, _user);
        _config.Section["Listeners"]!["db"] = new JsonObject
        {
            ["Mode"] = "MySql",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = Upstream,
            ["Credential"] = "db-login",
            ["Tls"] = new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _db.CaFile },
        };
        _config.Policy("orders-db", new JsonObject
        {
            ["Match"] = TestConfig.Match([_db.ServerName], ports: [_db.Port]),
            ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
        });
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _rds.Time);
        proxy.NeverEmit(() => _rds.Secrets);
        return proxy;
    }

    /// <summary>The mariadb client as the app: any user, no password, plain to the proxy on loopback.</summary>
    private static Task<ExternalClient.Result> MariaDbAsync(ProxyHarness proxy, string sql) =>
        ExternalClient.RunAsync(MariaDbServer.Client,
            ["--no-defaults", "-h", "127.0.0.1", "--protocol=TCP", "-P", proxy.App.GetListenerEndPoint("db").Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-u", "whoever", "--skip-password", "--skip-ssl", "--batch", "--skip-column-names", "-e", sql]);

    [MariaDbFact]
    public async Task The_mariadb_client_logs_in_with_the_rds_token_botocore_computes_and_the_server_rejection_is_named_first()
    {
        await using var proxy = await StartAsync();

        var rejected = await MariaDbAsync(proxy, "select current_user()");
        _output.WriteLine(rejected.ToString());
        Assert.NotEqual(0, rejected.ExitCode);
        Assert.Contains("the proxy's login to " + Upstream + " as '" + _user + "' with credential 'db-login' failed: Access denied", rejected.Error, StringComparison.Ordinal);

        var token = await _rds.ExpectedTokenAsync(_db.ServerName, _db.Port, _user);
        proxy.NeverEmit(token);
        await _db.SetPasswordAsync(_user, token);

        var query = await MariaDbAsync(proxy, "select current_user(); show session status like 'Ssl_version'");
        Assert.True(query.ExitCode == 0, query.ToString());
        var lines = query.Output.Trim().Split('\n');
        Assert.Equal(_user + "@%", lines[0]);
        Assert.StartsWith("Ssl_version\tTLSv1.", lines[1], StringComparison.Ordinal);
        Assert.Single(_rds.Sts.IssuedKeys);
        Assert.DoesNotContain(token, rejected.Error + query.Output + query.Error, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [MariaDbFact]
    public async Task Sts_down_is_refused_as_token_minting_without_any_secret()
    {
        _rds.Sts.Fail(503, FakeSts.ErrorXml("ServiceUnavailable", "down"));
        await using var proxy = await StartAsync();

        var refused = await MariaDbAsync(proxy, "select 1");

        _output.WriteLine(refused.ToString());
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("needs credential 'db-login', which is unavailable: no AWS keys to sign the RDS auth token with: credential 'aws' is unavailable: STS answered 503 (ServiceUnavailable)", refused.Error, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    public void Dispose()
    {
        _config.Dispose();
        _rds.Dispose();
    }
}
