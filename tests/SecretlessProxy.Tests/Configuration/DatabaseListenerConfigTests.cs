using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>Postgres listener and DatabaseLogin keys: each mistake is reported by its key, all in one run.</summary>
public sealed class DatabaseListenerConfigTests : IDisposable
{
    private const string Listener = "SecretlessProxy:Listeners:orders-db";
    private readonly TestConfig _config = new();

    public DatabaseListenerConfigTests()
    {
        _config.PostgresListener("orders-db", "db.internal:5432", "orders-db-login")
            .Credential("orders-db-login", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("db-password", "p"), ["Username"] = "orders" })
            .Credential("api-key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("api-key", "k") })
            .Policy("orders-db", new JsonObject { ["Match"] = TestConfig.Match(["db.internal"], ports: [5432]), ["Inject"] = new JsonObject { ["DatabaseLogin"] = true } });
    }

    private JsonObject ListenerNode => _config.Section["Listeners"]!["orders-db"]!.AsObject();

    private async Task<(int Exit, string Error)> ValidateAsync()
    {
        var error = new StringWriter();
        var exit = await CliApp.InvokeAsync(["validate", "--config", _config.Write()], new StringWriter(), error);
        return (exit, error.ToString());
    }

    private async Task AssertProblemAsync(string expected)
    {
        var (exit, error) = await ValidateAsync();
        Assert.Equal(2, exit);
        Assert.Contains(expected, error);
    }

    [Fact]
    public async Task The_issue_example_validates()
    {
        ListenerNode["Tls"] = new JsonObject { ["Mode"] = "VerifyFull", ["CaFile"] = WriteCa() };

        var (exit, error) = await ValidateAsync();

        Assert.True(exit == 0, error);
    }

    [Fact]
    public async Task A_database_policy_may_name_a_credential_and_then_applies_to_the_listener_that_logs_in_with_it()
    {
        // Two listeners on one server (read-only and admin logins) are told apart by the policy's credential.
        _config.Policy("orders-db", new JsonObject { ["Match"] = TestConfig.Match(["db.internal"]), ["Credential"] = "orders-db-login", ["Inject"] = new JsonObject { ["DatabaseLogin"] = true } });
        Assert.Equal(0, (await ValidateAsync()).Exit);

        _config.Section["Policies"]!["orders-db"]!["Credential"] = "no-such-login";
        await AssertProblemAsync("SecretlessProxy:Policies:orders-db:Credential: names unknown credential 'no-such-login'");
    }

    [Fact]
    public async Task Database_policies_for_different_logins_never_tie_but_two_for_one_login_do()
    {
        // An admin listener beside the read-only one; each login has its policy, with the same Match
        // and equally specific conditions: they never decide the same connection, so they are no tie.
        _config.PostgresListener("admin-db", "db.internal:5432", "admin-login")
            .Credential("admin-login", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("admin-password", "a"), ["Username"] = "postgres" })
            .Policy("orders-db", new JsonObject { ["Match"] = TestConfig.Match(["db.internal"], ports: [5432]), ["Inject"] = new JsonObject { ["DatabaseLogin"] = true }, ["Caller"] = new JsonObject { ["Uids"] = new JsonArray(1000) } })
            .Policy("orders-admin", new JsonObject { ["Match"] = TestConfig.Match(["db.internal"], ports: [5432]), ["Credential"] = "admin-login", ["Inject"] = new JsonObject { ["DatabaseLogin"] = true }, ["When"] = new JsonObject { ["Days"] = new JsonArray("Mon") } });
        var (exit, error) = await ValidateAsync();
        Assert.True(exit == 0, error);

        _config.Section["Policies"]!["orders-db"]!["Credential"] = "admin-login";
        await AssertProblemAsync("SecretlessProxy:Policies:orders-db: matches the same requests as policy 'orders-admin'");
    }

    [Theory]
    [InlineData("Url", "http://127.0.0.1:5432", ":Url: 'http://127.0.0.1:5432' is not a tcp://address:port URL")]
    [InlineData("Url", "tcp://db.internal:5432", ":Url: 'db.internal' is not an IP address or localhost")]
    [InlineData("Url", "tcp://127.0.0.1", ":Url: 'tcp://127.0.0.1' must name a port")]
    [InlineData("Upstream", "postgres://user:pw@db.internal:5432", ":Upstream: 'postgres://***@db.internal:5432' must be host:port")]
    [InlineData("Upstream", "db.internal:99999", ":Upstream: 'db.internal:99999' is not a host:port")]
    [InlineData("Credential", "missing", ":Credential: names unknown credential 'missing'")]
    [InlineData("Credential", "api-key", ":Credential: credential 'api-key' has no user name")]
    public async Task Listener_keys_are_checked(string key, string value, string expected)
    {
        ListenerNode[key] = value;

        await AssertProblemAsync(Listener + expected);
    }

    [Fact]
    public async Task Required_listener_keys_are_named()
    {
        ListenerNode.Remove("Upstream");
        ListenerNode.Remove("Credential");

        var (exit, error) = await ValidateAsync();

        Assert.Equal(2, exit);
        Assert.Contains(Listener + ":Upstream: is required: the database server as host:port", error);
        Assert.Contains(Listener + ":Credential: is required: the credential that logs in to the database", error);
    }

    [Theory]
    [InlineData("{\"Mode\":\"Prefer\"}", ":Tls:Mode: is not one of the allowed values")]
    [InlineData("{\"Mode\":\"Require\",\"CaFile\":\"ca.pem\"}", ":Tls:CaFile: is used only with Mode VerifyFull")]
    [InlineData("{\"CaFile\":\"no-such-ca.pem\"}", ":Tls:CaFile: file '")]
    [InlineData("{\"CaFile\":\"db-password\"}", ":Tls:CaFile: file '")]
    public async Task Tls_settings_are_checked(string tls, string expected)
    {
        ListenerNode["Tls"] = JsonNode.Parse(tls);
        WriteCa();

        await AssertProblemAsync(Listener + expected);
    }

    [Fact]
    public async Task Http_only_keys_on_a_postgres_listener_and_postgres_keys_on_an_http_listener_are_errors()
    {
        ListenerNode["Unmatched"] = "PassThrough";
        ListenerNode["RecordQuery"] = true;
        _config.RouteListener("api", "http://127.0.0.1:9000");
        _config.Section["Listeners"]!["api"]!["Credential"] = "orders-db-login";

        var (exit, error) = await ValidateAsync();

        Assert.Equal(2, exit);
        Assert.Contains(Listener + ":Unmatched: does not apply to a Postgres listener", error);
        Assert.Contains(Listener + ":RecordQuery: applies to HTTP listeners only", error);
        Assert.Contains("SecretlessProxy:Listeners:api:Credential: applies to Postgres, MySql and Redis listeners only", error);
    }

    [Fact]
    public async Task AcceptTls_needs_the_local_ca()
    {
        ListenerNode["AcceptTls"] = true;

        await AssertProblemAsync(Listener + ":AcceptTls: needs LocalCa");
    }

    [Fact]
    public async Task A_policy_without_a_credential_must_be_a_database_login()
    {
        _config.Policy("api", new JsonObject { ["Match"] = TestConfig.Match(["api.example.com"]), ["Inject"] = new JsonObject { ["Header"] = "X-Key" } });

        await AssertProblemAsync("SecretlessProxy:Policies:api:Credential: is required");
    }

    [Fact]
    public async Task Database_login_combined_with_a_header_is_an_error()
    {
        _config.Section["Policies"]!["orders-db"]!["Inject"]!["Header"] = "X-Key";

        await AssertProblemAsync("SecretlessProxy:Policies:orders-db:Inject: give only one of");
    }

    /// <summary>A real PEM certificate for CaFile, since the compiler parses it.</summary>
    private string WriteCa()
    {
        using var pki = new TestPki(_config.Directory);
        File.Copy(pki.CaFile, Path.Combine(_config.Directory, "ca.pem"), overwrite: true);
        return Path.Combine(_config.Directory, "ca.pem");
    }

    public void Dispose() => _config.Dispose();
}
