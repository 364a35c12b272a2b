using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.MintedTokens;

/// <summary>
/// A Postgres listener logging in to a real PostgreSQL 15 over verified TLS with an access token as
/// the password, as Azure Database for PostgreSQL (Microsoft Entra, <c>AzureWorkloadIdentity</c> with
/// the ossrdbms-aad scope) and Cloud SQL IAM database authentication (Google STS token exchange,
/// <c>OAuth2TokenExchange</c>) take it: the server's user has the token the fake issuer handed the
/// proxy as its password, and psql holding no password lands as that user. A token endpoint that
/// answers garbage is refused as the token minting, never with a token in it.
/// </summary>
[Collection(PostgresServer.Collection)]
public sealed class PostgresAccessTokenLoginTests
{
    private readonly PostgresServer _pg;
    private readonly ITestOutputHelper _output;

    public PostgresAccessTokenLoginTests(PostgresServer pg, ITestOutputHelper output)
    {
        _pg = pg;
        _output = output;
    }

    [PostgresFact]
    public Task Entra_token_for_azure_database_for_postgresql_logs_psql_in() => LogsInAsync(AccessTokenIssuer.Entra);

    [PostgresFact]
    public Task Google_token_for_cloud_sql_iam_logs_psql_in() => LogsInAsync(AccessTokenIssuer.Google);

    [PostgresFact]
    public Task Entra_endpoint_answering_garbage_is_refused_as_token_minting() => GarbageAsync(AccessTokenIssuer.Entra);

    [PostgresFact]
    public Task Google_endpoint_answering_garbage_is_refused_as_token_minting() => GarbageAsync(AccessTokenIssuer.Google);

    [PostgresFact]
    public async Task A_login_never_starts_with_a_token_that_expires_within_the_handshake_timeout()
    {
        using var config = new TestConfig();
        using var issuer = AccessTokenIssuer.Google(config);
        // Tokens for a minute, no refresh ahead before 57 s, logins bounded by 30 s.
        issuer.Serve(expiresIn: 60);
        var role = "token_app_" + Guid.NewGuid().ToString("N")[..8];
        await using var proxy = await StartAsync(config, issuer, role, c =>
        {
            c.Section["Credentials"]!["db-login"]!["RefreshAt"] = 0.95;
            c.Section["Listeners"]!["db"]!["HandshakeTimeout"] = "00:00:30";
        });
        await PsqlAsync(proxy, "select 1");
        await _pg.SetPasswordAsync(role, Assert.Single(issuer.Issued));
        var first = await PsqlAsync(proxy, "select current_user");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Single(issuer.Issued);

        // 45 s on, the cached token has 15 s left: still valid, but a login could outlive it. The
        // next login waits for a new token instead (the server, still holding the first one as the
        // password, now rejects the login: proof the dying token was not sent).
        issuer.Time.Advance(TimeSpan.FromSeconds(45));
        var renewed = await PsqlAsync(proxy, "select current_user");
        _output.WriteLine(renewed.ToString());
        Assert.Equal(2, issuer.Issued.Count);
        Assert.Contains("password authentication failed", renewed.Error, StringComparison.Ordinal);
        await _pg.SetPasswordAsync(role, issuer.Issued[1]);
        var second = await PsqlAsync(proxy, "select current_user");
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(role, second.Output.Trim());

        // When no new token can be had, the login is refused rather than started with one that dies
        // during it.
        issuer.Time.Advance(TimeSpan.FromSeconds(45));
        issuer.AnswerGarbage();
        var refused = await PsqlAsync(proxy, "select current_user");
        _output.WriteLine(refused.ToString());
        Assert.Contains("needs credential 'db-login', which is unavailable", refused.Error, StringComparison.Ordinal);
        Assert.Equal(2, issuer.Issued.Count);
        await proxy.AssertNoSecretEmittedAsync();
    }

    private async Task LogsInAsync(Func<TestConfig, AccessTokenIssuer> issuerFor)
    {
        using var config = new TestConfig();
        using var issuer = issuerFor(config);
        var role = "token_app_" + Guid.NewGuid().ToString("N")[..8];
        await using var proxy = await StartAsync(config, issuer, role);

        // Before the server knows the token, it rejects the login, and says so.
        var rejected = await PsqlAsync(proxy, "select current_user");
        _output.WriteLine(rejected.ToString());
        Assert.Contains("the proxy's login to " + Upstream + " as \"" + role + "\" with credential 'db-login' failed: password authentication failed", rejected.Error, StringComparison.Ordinal);

        var token = Assert.Single(issuer.Issued);
        await _pg.SetPasswordAsync(role, token);

        var query = await PsqlAsync(proxy, "select current_user || ' ' || ssl::text from pg_stat_ssl where pid = pg_backend_pid()");
        Assert.True(query.ExitCode == 0, query.ToString());
        Assert.Equal(role + " true", query.Output.Trim());
        Assert.Single(issuer.Issued);
        Assert.DoesNotContain(token, rejected.Error + query.Output + query.Error, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    private async Task GarbageAsync(Func<TestConfig, AccessTokenIssuer> issuerFor)
    {
        using var config = new TestConfig();
        using var issuer = issuerFor(config);
        issuer.AnswerGarbage();
        await using var proxy = await StartAsync(config, issuer, "token_app_" + Guid.NewGuid().ToString("N")[..8]);

        var refused = await PsqlAsync(proxy, "select 1");

        _output.WriteLine(refused.ToString());
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("FATAL:  policy 'orders-db' needs credential 'db-login', which is unavailable: ", refused.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("captive portal", refused.Error, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    private string Upstream => _pg.ServerName + ":" + _pg.Port;

    private async Task<ProxyHarness> StartAsync(TestConfig config, AccessTokenIssuer issuer, string role, Action<TestConfig>? configure = null)
    {
        await _pg.ExecAsSuperuserAsync($"CREATE ROLE {role} LOGIN PASSWORD 'not-the-token-{Guid.NewGuid():N}'");
        issuer.Configure(config, role);
        config.PostgresListener("db", Upstream, "db-login", new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = _pg.CaFile })
            .Policy("orders-db", new JsonObject
            {
                ["Match"] = TestConfig.Match([_pg.ServerName], ports: [_pg.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        configure?.Invoke(config);
        var proxy = await ProxyHarness.StartAsync(config.Write(), issuer.Time);
        proxy.NeverEmit(() => issuer.Secrets);
        return proxy;
    }

    private static Task<ExternalClient.Result> PsqlAsync(ProxyHarness proxy, string sql) =>
        ExternalClient.RunAsync("/usr/bin/psql",
            ["-X", "-w", "-Atc", sql, $"host=127.0.0.1 port={proxy.App.GetListenerEndPoint("db").Port} dbname={PostgresServer.Database} user=whoever sslmode=disable"],
            new Dictionary<string, string> { ["PGPASSWORD"] = "", ["PGCONNECT_TIMEOUT"] = "15" });
}
