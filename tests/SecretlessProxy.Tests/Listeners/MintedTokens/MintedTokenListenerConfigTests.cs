using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.MintedTokens;

/// <summary>
/// A database listener whose credential is a token minted for the workload (Entra, OAuth2 token
/// exchange or client credentials, an RDS auth token) sends it only to a verified server: any other
/// <c>Tls:Mode</c> is refused at validation, by the credential's shape, whatever its source. A
/// password from a file may still go over <c>Require</c>, as before.
/// </summary>
public sealed class MintedTokenListenerConfigTests : IDisposable
{
    private readonly TestConfig _config = new();
    private readonly HttpMessageInvoker _http = new(new SocketsHttpHandler { UseProxy = false });

    [Theory]
    [InlineData("Require")]
    [InlineData("Disable")]
    public async Task An_access_token_as_a_database_password_needs_Tls_Mode_VerifyFull(string mode)
    {
        Credentials.WorkloadToken.Write(_config, DateTimeOffset.UtcNow);
        _config.Credential("entra", new JsonObject
            {
                ["Source"] = "AzureWorkloadIdentity",
                ["TenantId"] = "7a3f0c1e-5b2d-4e8f-9a61-0c2b3d4e5f60",
                ["ClientId"] = "0e1d2c3b-4a59-4687-9abc-def012345678",
                ["Scopes"] = new JsonArray(AccessTokenIssuer.EntraScope),
                ["Username"] = "orders_app",
            })
            .Credential("google", new JsonObject
            {
                ["Source"] = "OAuth2TokenExchange",
                ["TokenUrl"] = "https://sts.googleapis.com/v1/token",
                ["Audience"] = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pool/providers/k8s",
                ["Scopes"] = new JsonArray(AccessTokenIssuer.GoogleScope),
                ["Username"] = "orders-sa@project.iam",
            })
            .Credential("file", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("pw", "file-password"), ["Username"] = "legacy" })
            .PostgresListener("entra-db", "orders.postgres.database.azure.com:5432", "entra", new JsonObject { ["Mode"] = mode })
            .PostgresListener("google-db", "10.20.0.3:5432", "google", new JsonObject { ["Mode"] = mode })
            .PostgresListener("file-db", "legacy.internal:5432", "file", new JsonObject { ["Mode"] = mode });
        _config.Section["Listeners"]!["entra-mysql"] = new JsonObject
        {
            ["Mode"] = "MySql",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = "orders.mysql.database.azure.com:3306",
            ["Credential"] = "entra",
            ["Tls"] = new JsonObject { ["Mode"] = mode },
        };

        var result = await new ConfigLoader(TimeProvider.System, _http).LoadAsync(_config.Write(), includeEnvironment: false);

        var errors = result.Errors.Select(e => e.ToString()).ToArray();
        foreach (var listener in new[] { "entra-db", "google-db", "entra-mysql" })
        {
            Assert.Contains(errors, e => e.StartsWith("SecretlessProxy:Listeners:" + listener + ":Tls:Mode: must be VerifyFull with credential '", StringComparison.Ordinal));
        }

        Assert.DoesNotContain(errors, e => e.StartsWith("SecretlessProxy:Listeners:file-db:", StringComparison.Ordinal));
    }

    public void Dispose()
    {
        _config.Dispose();
        _http.Dispose();
    }
}
