using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.MintedTokens;

/// <summary>
/// A Postgres listener logging in to a real PostgreSQL 15 over verified TLS with a token minted from
/// the workload's identity: the RDS IAM auth token (signed with the keys a WireMock STS gave for the
/// workload token). The server's user has the token botocore computes for the same keys and clock as
/// its password, and unmodified psql holding no password lands as that user. Refusals name the part
/// that failed (workload identity, token minting, the server's rejection), never the token.
/// </summary>
[Collection(PostgresServer.Collection)]
public sealed class PostgresMintedTokenLoginTests : IDisposable
{
    private readonly PostgresServer _pg;
    private readonly ITestOutputHelper _output;
    private readonly TestConfig _config = new();
    private readonly RdsTokenFixture _rds = new();
    private readonly string _role = "rds_app_" + Guid.NewGuid().ToString("N")[..8];

    public PostgresMintedTokenLoginTests(PostgresServer pg, ITestOutputHelper output)
    {
        _pg = pg;
        _output = output;
    }

    private string Upstream => _pg.ServerName + ":" + _pg.Port;

    private void Listener(JsonObject? tls = null) =>
        _config.PostgresListener("db", Upstream, "db-login", tls ?? new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _pg.CaFile })
            .Policy("orders-db", new JsonObject
            {
                ["Match"] = TestConfig.Match([_pg.ServerName], ports: [_pg.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });

    private async Task<ProxyHarness> StartAsync(bool writeToken = true)
    {
        await _pg.ExecAsSuperuserAsync($"CREATE ROLE {_role} LOGIN PASSWORD 'not-the-token-{Guid.NewGuid():N}'");
        _rds.Configure(_config, Upstream, _role, writeToken);
        Listener();
        var proxy = await ProxyHarness.StartAsync(_config.Write(), _rds.Time);
        if (writeToken)
        {
            proxy.NeverEmit(() => _rds.Secrets);
        }

        return proxy;
    }

    /// <summary>psql as the app: any user, no password, plain to the proxy on loopback.</summary>
    private static Task<ExternalClient.Result> PsqlAsync(ProxyHarness proxy, string sql) =>
        ExternalClient.RunAsync("/usr/bin/psql",
            ["-X", "-w", "-Atc", sql, $"host=127.0.0.1 port={proxy.App.GetListenerEndPoint("db").Port} dbname={PostgresServer.Database} user=whoever sslmode=disable"],
            new Dictionary<string, string> { ["PGPASSWORD"] = "", ["PGCONNECT_TIMEOUT"] = "15" });

    [PostgresFact]
    public async Task Psql_logs_in_with_the_rds_token_botocore_computes_and_the_server_rejection_is_named_first()
    {
        await using var proxy = await StartAsync();

        // The server's user does not have the token as its password yet: the server rejects the login,
        // and the app is told it was the server (with its own message), not the identity or STS.
        var rejected = await PsqlAsync(proxy, "select current_user");
        _output.WriteLine(rejected.ToString());
        Assert.NotEqual(0, rejected.ExitCode);
        Assert.Contains("the proxy's login to " + Upstream + " as \"" + _role + "\" with credential 'db-login' failed", rejected.Error, StringComparison.Ordinal);
        Assert.Contains("password authentication failed", rejected.Error, StringComparison.Ordinal);

        // The token the proxy presented is the one botocore makes from the same keys and clock: set
        // as the user's password, it logs in.
        var token = await RdsTokenAsync();
        proxy.NeverEmit(token);
        await _pg.SetPasswordAsync(_role, token);

        var query = await PsqlAsync(proxy, "select current_user || ' ' || ssl::text from pg_stat_ssl where pid = pg_backend_pid()");
        Assert.True(query.ExitCode == 0, query.ToString());
        Assert.Equal(_role + " true", query.Output.Trim());

        Assert.Single(_rds.Sts.IssuedKeys);
        var connected = proxy.Spans.Last(s => s.DisplayName == "secretless.database.connection");
        Assert.Equal("connected", connected.GetTagItem("secretless.outcome"));
        Assert.Equal("AwsRdsAuthToken", connected.GetTagItem("secretless.credential.source"));
        Assert.DoesNotContain(token, rejected.Error + query.Output + query.Error, StringComparison.Ordinal);

        // The inventory names what mints the token (endpoint, user, region, the STS role that signs)
        // and its lifetime.
        using var admin = new HttpClient();
        var inventory = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/inventory"));
        Assert.Contains("AWS RDS IAM auth token for " + Upstream + " (user " + _role + ", region eu-west-1)", inventory, StringComparison.Ordinal);
        Assert.Contains("AWS STS eu-west-1, role arn:aws:iam::123456789012:role/orders-db", inventory, StringComparison.Ordinal);
        Assert.Contains("15 minutes (X-Amz-Expires 900), never beyond the signing keys", inventory, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [PostgresFact]
    public async Task Sts_down_is_refused_as_token_minting_without_any_secret()
    {
        _rds.Sts.Fail(503, FakeSts.ErrorXml("ServiceUnavailable", "down"));
        await using var proxy = await StartAsync();

        var refused = await PsqlAsync(proxy, "select 1");

        _output.WriteLine(refused.ToString());
        Assert.NotEqual(0, refused.ExitCode);
        // 57P03 (cannot_connect_now): transient; the reason says the token could not be minted, and why.
        Assert.Contains("needs credential 'db-login', which is unavailable: no AWS keys to sign the RDS auth token with: credential 'aws' is unavailable: STS answered 503 (ServiceUnavailable)", refused.Error, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [PostgresFact]
    public async Task A_missing_workload_identity_is_refused_as_the_identity_and_sts_is_never_asked()
    {
        await using var proxy = await StartAsync(writeToken: false);

        var refused = await PsqlAsync(proxy, "select 1");

        _output.WriteLine(refused.ToString());
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("the workload identity is not valid", refused.Error, StringComparison.Ordinal);
        // Nothing secret exists here to leak: no workload token, and STS never issued a key.
        Assert.Empty(_rds.Sts.IssuedKeys);
    }

    private Task<string> RdsTokenAsync() => _rds.ExpectedTokenAsync(_pg.ServerName, _pg.Port, _role);

    public void Dispose()
    {
        _config.Dispose();
        _rds.Dispose();
    }
}
