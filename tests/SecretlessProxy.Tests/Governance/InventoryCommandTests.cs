using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Governance;

/// <summary>
/// <c>secretless-proxy inventory</c> over a configuration with five sources, three listener kinds
/// (a Route, a Forward with Unmatched PassThrough, a Postgres) and five policies: the exact reach of
/// each credential, the ranking, every finding, each format, and no secret in any of it.
/// </summary>
public sealed partial class InventoryCommandTests : IDisposable
{
    private readonly TestConfig _config = new();
    private readonly string[] _secrets;

    public InventoryCommandTests()
    {
        var staticKey = "static-key-value-" + Guid.NewGuid().ToString("N");
        var clientSecret = "client-secret-value-" + Guid.NewGuid().ToString("N");
        var dbPassword = "db-password-value-" + Guid.NewGuid().ToString("N");
        var spare = "spare-value-" + Guid.NewGuid().ToString("N");
        var workloadToken = "eyJworkload-token-" + Guid.NewGuid().ToString("N");
        _secrets = [staticKey, clientSecret, dbPassword, spare, workloadToken, _config.AdminToken];

        _config.Set("Identity", new JsonObject
        {
            ["Source"] = "TokenFile",
            ["Path"] = _config.SecretFile("workload-token", workloadToken),
            ["Issuer"] = "https://kubernetes.default.svc",
            ["JwksUrl"] = "https://kubernetes.default.svc/openid/v1/jwks",
            ["Audience"] = "secretless-proxy",
        });
        _config.Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") });
        _config.RouteListener("api", "https://api.example.com")
            .ForwardListener("egress", [443], unmatched: "PassThrough")
            .PostgresListener("orders-db", "db.internal:5432", "db-login");

        _config.Credential("static-key", new JsonObject
            {
                ["Source"] = "File",
                ["Path"] = _config.SecretFile("static-key", staticKey),
                ["Owner"] = new JsonObject { ["Business"] = "Payments", ["Technical"] = "platform-team", ["Contact"] = "#payments-oncall" },
            })
            .Credential("payments-token", TestConfig.OAuth2("https://auth.example.com/oauth2/token", _config.SecretFile("client-secret", clientSecret)))
            .Credential("kv-key", new JsonObject
            {
                ["Source"] = "Vault",
                ["Address"] = "https://vault.example.com:8200",
                ["AuthMethod"] = "Jwt",
                ["Role"] = "orders",
                ["SecretPath"] = "secret/payments/api",
                ["Field"] = "api-key",
                ["Owner"] = new JsonObject { ["Technical"] = "platform-team" },
            })
            .Credential("graph", new JsonObject
            {
                ["Source"] = "AzureWorkloadIdentity",
                ["TenantId"] = "contoso.onmicrosoft.com",
                ["ClientId"] = "11111111-2222-3333-4444-555555555555",
                ["Scopes"] = new JsonArray("https://graph.microsoft.com/.default"),
                ["Owner"] = new JsonObject { ["Business"] = "HR" },
            })
            .Credential("db-login", new JsonObject
            {
                ["Source"] = "File",
                ["Path"] = _config.SecretFile("db-password", dbPassword),
                ["Username"] = "orders_app",
                ["Owner"] = new JsonObject { ["Technical"] = "dba" },
            })
            .Credential("spare", new JsonObject
            {
                ["Source"] = "File",
                ["Path"] = _config.SecretFile("spare", spare),
                ["Owner"] = new JsonObject { ["Technical"] = "platform-team" },
            });

        var legacy = TestConfig.HeaderPolicy(TestConfig.Match(["api.example.com"], "/legacy/", ["GET"]), "static-key", "X-Api-Key", "{token}");
        legacy["Caller"] = new JsonObject { ["Uids"] = new JsonArray(1000) };
        var kv = TestConfig.HeaderPolicy(TestConfig.Match(["kv-consumer.example.com"], "/v2/", ["POST"]), "kv-key");
        kv["Identity"] = new JsonObject { ["Namespaces"] = new JsonArray("shop") };
        kv["When"] = new JsonObject { ["Days"] = new JsonArray("Tue", "Mon"), ["Between"] = "08:00-18:00", ["TimeZone"] = "Europe/Berlin" };
        var graph = TestConfig.HeaderPolicy(TestConfig.Match(["graph.microsoft.com"], methods: ["GET"]), "graph");
        graph["Caller"] = new JsonObject { ["Uids"] = new JsonArray(1000) };
        graph["Identity"] = new JsonObject { ["ServiceAccounts"] = new JsonArray("orders") };
        _config.Policy("legacy", legacy)
            .Policy("payments-any", TestConfig.HeaderPolicy(TestConfig.Match(["*.payments.example.com"]), "payments-token"))
            .Policy("kv", kv)
            .Policy("graph", graph)
            .Policy("orders-db", new JsonObject
            {
                ["Match"] = TestConfig.Match(["db.internal"], "/orders", ports: [5432]),
                ["Credential"] = "db-login",
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
    }

    [Fact]
    public async Task Json_gives_each_credential_its_issuer_owner_lifecycle_and_exact_reach()
    {
        var entries = await JsonEntriesAsync();

        var payments = entries["payments-token"];
        Assert.Equal("OAuth2ClientCredentials", payments.GetProperty("source").GetString());
        Assert.Equal("token endpoint auth.example.com (client orders-service)", payments.GetProperty("issuingSystem").GetString());
        Assert.False(payments.TryGetProperty("owner", out _));
        Assert.Contains("expires_in", payments.GetProperty("lifetime").GetString());
        Assert.Contains("no RFC 7009 revocation", payments.GetProperty("revocation").GetString());
        var paymentsReach = Assert.Single(payments.GetProperty("reach").EnumerateArray());
        Assert.Equal(
            """{"policy":"payments-any","kind":"http","injection":"header","hosts":["*.payments.example.com"],"pathPrefix":"","listeners":["egress"],"score":320}""",
            Compact(paymentsReach));

        var legacy = entries["static-key"];
        Assert.Equal("file " + Path.Combine(_config.Directory, "static-key"), legacy.GetProperty("issuingSystem").GetString());
        Assert.Equal("""{"business":"Payments","technical":"platform-team","contact":"#payments-oncall"}""", Compact(legacy.GetProperty("owner")));
        Assert.Equal("no expiry: valid until the file is replaced", legacy.GetProperty("lifetime").GetString());
        // The Route listener counts: the policy matches its upstream, api.example.com:443.
        Assert.Equal(
            """{"policy":"legacy","kind":"http","injection":"header","hosts":["api.example.com"],"methods":["GET"],"pathPrefix":"/legacy/","listeners":["api","egress"],"caller":{"uids":[1000]},"score":4}""",
            Compact(Assert.Single(legacy.GetProperty("reach").EnumerateArray())));

        var kv = entries["kv-key"];
        Assert.Equal("Vault vault.example.com:8200, path secret/payments/api field api-key", kv.GetProperty("issuingSystem").GetString());
        Assert.Equal(
            """{"policy":"kv","kind":"http","injection":"header","hosts":["kv-consumer.example.com"],"methods":["POST"],"pathPrefix":"/v2/","listeners":["egress"],"identity":{"namespaces":["shop"]},"when":"Mon,Tue 08:00-18:00 Europe/Berlin","score":4}""",
            Compact(Assert.Single(kv.GetProperty("reach").EnumerateArray())));

        var graph = entries["graph"];
        Assert.Equal("Microsoft Entra login.microsoftonline.com, tenant contoso.onmicrosoft.com, client 11111111-2222-3333-4444-555555555555", graph.GetProperty("issuingSystem").GetString());
        Assert.Equal(
            """{"policy":"graph","kind":"http","injection":"header","hosts":["graph.microsoft.com"],"methods":["GET"],"pathPrefix":"","listeners":["egress"],"caller":{"uids":[1000]},"identity":{"serviceAccounts":["orders"]},"score":2}""",
            Compact(Assert.Single(graph.GetProperty("reach").EnumerateArray())));

        // A database listener's login: reach is its upstream, through the policy that admits it.
        var db = entries["db-login"];
        Assert.Equal(
            """{"policy":"orders-db","kind":"database","injection":"database-login","hosts":["db.internal"],"ports":[5432],"pathPrefix":"/orders","listeners":["orders-db"],"score":4}""",
            Compact(Assert.Single(db.GetProperty("reach").EnumerateArray())));

        // Never used and no policy names it: no reach, and still listed.
        Assert.Empty(entries["spare"].GetProperty("reach").EnumerateArray());
        Assert.Equal(0, entries["spare"].GetProperty("reachScore").GetInt32());
        Assert.All(entries.Values, e => Assert.False(e.TryGetProperty("uses", out _), "uses are a run-time field"));
    }

    [Fact]
    public async Task Entries_are_ranked_widest_reach_first()
    {
        var result = await InventoryAsync("json");

        var ranked = JsonDocument.Parse(result.Output).RootElement.GetProperty("credentials").EnumerateArray()
            .Select(e => (Rank: e.GetProperty("rank").GetInt32(), Name: e.GetProperty("name").GetString()!, Score: e.GetProperty("reachScore").GetInt32()))
            .ToArray();

        // 320 = wildcard (10) x every method (4) x every path (2) x anyone (4); equal scores go to the one with more findings, then by name.
        Assert.Equal(
            [(1, "payments-token", 320), (2, "db-login", 4), (3, "static-key", 4), (4, "kv-key", 4), (5, "graph", 2), (6, "spare", 0)],
            ranked.Select(r => (r.Rank, r.Name, r.Score)).ToArray());
    }

    [Fact]
    public async Task Every_finding_that_widens_the_blast_radius_is_reported_where_it_applies()
    {
        var entries = await JsonEntriesAsync();

        string[] Codes(string name) => entries[name].GetProperty("findings").EnumerateArray().Select(f => f.GetProperty("code").GetString()!).ToArray();

        Assert.Equal(["no-caller-or-identity-condition", "wildcard-host", "every-method", "pass-through-listener", "no-owner"], Codes("payments-token"));
        Assert.Equal(["no-caller-or-identity-condition", "long-lived-file-secret"], Codes("db-login"));
        Assert.Equal(["pass-through-listener"], Codes("kv-key"));
        Assert.Equal(["pass-through-listener", "long-lived-file-secret"], Codes("static-key"));
        Assert.Equal(["pass-through-listener"], Codes("graph"));
        Assert.Equal(["long-lived-file-secret"], Codes("spare"));

        var details = entries["payments-token"].GetProperty("findings").EnumerateArray().Select(f => f.GetProperty("detail").GetString()!).ToArray();
        Assert.Contains("policy 'payments-any' matches *.payments.example.com: every host below it, present and future", details);
        Assert.Contains(details, d => d.StartsWith("listener 'egress' (Forward) has Unmatched PassThrough", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_table_ranks_the_credentials_and_lists_their_reach_and_findings()
    {
        var result = await InventoryAsync("table");

        var lines = result.Output.Split('\n');
        var credentials = Section(lines, "Credentials, widest reach first");
        Assert.Equal(["RANK", "SCORE", "CREDENTIAL", "SOURCE", "ISSUING SYSTEM", "OWNER", "FINDINGS"], credentials[0]);
        Assert.Equal(["1", "320", "payments-token", "OAuth2ClientCredentials", "token endpoint auth.example.com (client orders-service)", "-", "no-caller-or-identity-condition,wildcard-host,every-method,pass-through-listener,no-owner"], credentials[1]);
        Assert.Equal(["3", "4", "static-key", "File", "file " + Path.Combine(_config.Directory, "static-key"), "business: Payments; technical: platform-team; contact: #payments-oncall", "pass-through-listener,long-lived-file-secret"], credentials[3]);
        Assert.Equal(7, credentials.Count);

        var reach = Section(lines, "Reach");
        Assert.Equal(["CREDENTIAL", "POLICY", "KIND", "LISTENERS", "HOSTS", "PORTS", "METHODS", "PATH", "CALLER", "IDENTITY", "WHEN", "SCORE"], reach[0]);
        Assert.Contains(["payments-token", "payments-any", "http (header)", "egress", "*.payments.example.com", "any", "any", "any", "any", "any", "any", "320"], reach);
        Assert.Contains(["static-key", "legacy", "http (header)", "api,egress", "api.example.com", "any", "GET", "/legacy/", "uid 1000", "any", "any", "4"], reach);
        Assert.Contains(["kv-key", "kv", "http (header)", "egress", "kv-consumer.example.com", "any", "POST", "/v2/", "any", "ns shop", "Mon,Tue 08:00-18:00 Europe/Berlin", "4"], reach);
        Assert.Contains(["db-login", "orders-db", "database (database-login)", "orders-db", "db.internal", "5432", "-", "/orders", "any", "any", "any", "4"], reach);
        Assert.Equal(6, reach.Count);

        var findings = Section(lines, "Findings");
        Assert.Contains(["spare", "long-lived-file-secret", "the value never expires on its own: a copy stays valid until the file is rotated and the old value retired"], findings);
        Assert.Equal(1 + 5 + 2 + 1 + 2 + 1 + 1, findings.Count);
    }

    [Fact]
    public async Task Markdown_gives_the_same_tables()
    {
        var result = await InventoryAsync("markdown");

        Assert.Contains("## Credentials, widest reach first\n\n| RANK | SCORE | CREDENTIAL | SOURCE | ISSUING SYSTEM | OWNER | FINDINGS |\n| --- | --- |", result.Output);
        Assert.Contains("| 6 | 0 | spare | File |", result.Output);
        Assert.Contains("\n## Reach\n", result.Output);
        Assert.Contains("| db-login | orders-db | database (database-login) | orders-db | db.internal | 5432 | - | /orders | any | any | any | 4 |", result.Output);
        Assert.Contains("\n## Rotation and revocation\n", result.Output);
        Assert.Contains("\n## Findings\n", result.Output);
    }

    [Fact]
    public async Task No_secret_value_appears_in_any_format()
    {
        foreach (var format in new[] { "table", "json", "markdown" })
        {
            var result = await InventoryAsync(format);
            foreach (var secret in _secrets)
            {
                Assert.DoesNotContain(secret, result.Output, StringComparison.Ordinal);
                Assert.DoesNotContain(secret, result.Error, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task RequireOwners_makes_each_credential_without_an_owner_a_validate_error_by_its_key()
    {
        _config.Set("RequireOwners", true);
        // A contact alone names nobody who answers for it.
        _config.Section["Credentials"]!["spare"]!["Owner"] = new JsonObject { ["Contact"] = "#somewhere" };
        var path = _config.Write();

        var validate = await CliRunner.ValidateAsync(path);
        var inventory = await CliRunner.RunAsync("inventory", "--config", path);

        Assert.Equal(2, validate.ExitCode);
        Assert.Equal(
            [
                "SecretlessProxy:Credentials:payments-token:Owner: is required (RequireOwners is true): give Business or Technical, and Contact",
                "SecretlessProxy:Credentials:spare:Owner: is required (RequireOwners is true): give Business or Technical, and Contact",
            ],
            validate.Problems.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(2, inventory.ExitCode);
        Assert.Equal(validate.Problems.Order(StringComparer.Ordinal), inventory.Problems.Order(StringComparer.Ordinal));
        Assert.Empty(inventory.Output);
    }

    [Fact]
    public async Task With_RequireOwners_and_every_owner_named_the_configuration_is_valid()
    {
        _config.Set("RequireOwners", true);
        _config.Section["Credentials"]!["payments-token"]!["Owner"] = new JsonObject { ["Business"] = "Payments" };

        var validate = await CliRunner.ValidateAsync(_config.Write());

        Assert.True(validate.ExitCode == 0, validate.ToString());
    }

    private async Task<CliResult> InventoryAsync(string format)
    {
        var result = await CliRunner.RunAsync("inventory", "--config", _config.Write(), "--format", format);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    private async Task<Dictionary<string, JsonElement>> JsonEntriesAsync()
    {
        var result = await InventoryAsync("json");
        return JsonDocument.Parse(result.Output).RootElement.GetProperty("credentials").EnumerateArray()
            .ToDictionary(e => e.GetProperty("name").GetString()!, e => e.Clone());
    }

    private static string Compact(JsonElement element) => JsonSerializer.Serialize(element);

    /// <summary>The rows of one text table (header first), cells split where the columns are padded apart.</summary>
    private static List<string[]> Section(string[] lines, string title)
    {
        var rows = new List<string[]>();
        foreach (var line in lines.SkipWhile(l => l != title).Skip(1))
        {
            if (line.Length == 0)
            {
                break;
            }

            rows.Add(ColumnGap().Split(line));
        }

        Assert.NotEmpty(rows);
        return rows;
    }

    [GeneratedRegex(" {2,}")]
    private static partial Regex ColumnGap();

    public void Dispose() => _config.Dispose();
}
