using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Governance;

/// <summary>
/// Each credential source says where its values are issued and what revoking does, as the
/// inventory prints it (the sources not covered by <see cref="InventoryCommandTests"/>).
/// </summary>
public sealed class SourceDescriptionTests : IDisposable
{
    private readonly TestConfig _config = new();

    public SourceDescriptionTests()
    {
        _config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _config.SecretFile("workload-token", "eyJtoken-" + Guid.NewGuid().ToString("N")) });
        _config.RouteListener("api", "https://api.example.com")
            .Credential("s3", new JsonObject { ["Source"] = "AwsWebIdentity", ["RoleArn"] = "arn:aws:iam::123456789012:role/orders", ["Region"] = "eu-west-1" })
            .Credential("exchanged", new JsonObject { ["Source"] = "OAuth2TokenExchange", ["TokenUrl"] = "https://sts.example.com/token", ["Audience"] = "payments" })
            .Credential("host-identity", new JsonObject { ["Source"] = "AzureManagedIdentity", ["Scopes"] = new JsonArray("https://storage.azure.com/.default") })
            .Credential("db-lease", new JsonObject
            {
                ["Source"] = "Vault",
                ["Address"] = "https://vault.example.com",
                ["AuthMethod"] = "Kubernetes",
                ["Role"] = "orders",
                ["DynamicPath"] = "database/creds/orders",
            });
    }

    [Fact]
    public async Task Each_source_names_its_issuing_system_and_revocation()
    {
        var result = await CliRunner.RunAsync("inventory", "--config", _config.Write(), "--format", "json");

        Assert.True(result.ExitCode == 0, result.ToString());
        var entries = JsonDocument.Parse(result.Output).RootElement.GetProperty("credentials").EnumerateArray()
            .ToDictionary(e => e.GetProperty("name").GetString()!, e => (Issuer: e.GetProperty("issuingSystem").GetString(), Revocation: e.GetProperty("revocation").GetString()!));
        Assert.Equal("AWS STS eu-west-1, role arn:aws:iam::123456789012:role/orders", entries["s3"].Issuer);
        Assert.Contains("STS has no per-session revocation", entries["s3"].Revocation);
        Assert.Equal("token exchange endpoint sts.example.com (audience payments)", entries["exchanged"].Issuer);
        Assert.Equal("the host's managed identity (system-assigned)", entries["host-identity"].Issuer);
        Assert.Equal("Vault vault.example.com, path database/creds/orders", entries["db-lease"].Issuer);
        Assert.StartsWith("revokes the current lease at Vault (sys/leases/revoke)", entries["db-lease"].Revocation);
    }

    [Fact]
    public async Task A_client_certificate_is_an_entry_named_as_its_policy_writes_it_with_the_files_it_reads()
    {
        using var pki = new TestPki(_config.Directory);
        var folder = Directory.CreateDirectory(Path.Combine(_config.Directory, "client")).FullName;
        var (certificate, certFile, keyFile) = pki.IssueClient(folder, "CN=orders");
        certificate.Dispose();
        _config.RouteListener("mtls", "https://bank.example.com")
            .Policy("bank", new JsonObject
            {
                ["Match"] = TestConfig.Match(["bank.example.com"], "/payments/", ["POST"]),
                ["Inject"] = new JsonObject { ["ClientCertificate"] = new JsonObject { ["CertFile"] = "client/" + Path.GetFileName(certFile), ["KeyFile"] = "client/" + Path.GetFileName(keyFile) } },
            });

        var result = await CliRunner.RunAsync("inventory", "--config", _config.Write(), "--format", "json");

        Assert.True(result.ExitCode == 0, result.ToString());
        var entry = JsonDocument.Parse(result.Output).RootElement.GetProperty("credentials").EnumerateArray()
            .Single(e => e.GetProperty("source").GetString() == "ClientCertificate");
        Assert.Equal("client/" + Path.GetFileName(certFile), entry.GetProperty("name").GetString());
        Assert.Equal("certificate file " + certFile + " (key " + keyFile + ")", entry.GetProperty("issuingSystem").GetString());
        var reach = Assert.Single(entry.GetProperty("reach").EnumerateArray());
        Assert.Equal(
            """{"policy":"bank","kind":"http","injection":"client-certificate","hosts":["bank.example.com"],"methods":["POST"],"pathPrefix":"/payments/","listeners":["mtls"],"score":8}""",
            JsonSerializer.Serialize(reach));
        Assert.DoesNotContain(File.ReadAllText(keyFile).Split('\n')[1], result.Output, StringComparison.Ordinal);
    }

    public void Dispose() => _config.Dispose();
}
