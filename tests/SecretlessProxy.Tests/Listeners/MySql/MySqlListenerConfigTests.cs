using System.Security.Cryptography;
using System.Text.Json.Nodes;
using SecretlessProxy.Cli;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Listeners.MySql;

/// <summary>MySql listener keys: the shared database keys and the MySql section, each mistake reported by its key.</summary>
public sealed class MySqlListenerConfigTests : IDisposable
{
    private const string Listener = "SecretlessProxy:Listeners:orders-db";
    private readonly TestConfig _config = new();

    public MySqlListenerConfigTests()
    {
        _config.Section["Listeners"]!["orders-db"] = new JsonObject { ["Mode"] = "MySql", ["Url"] = "tcp://127.0.0.1:3306", ["Upstream"] = "db.internal", ["Credential"] = "orders-db-login" };
        _config.Credential("orders-db-login", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("db-password", "p"), ["Username"] = "orders" })
            .Policy("orders-db", new JsonObject { ["Match"] = TestConfig.Match(["db.internal"], ports: [3306]), ["Inject"] = new JsonObject { ["DatabaseLogin"] = true } });
    }

    private JsonObject ListenerNode => _config.Section["Listeners"]!["orders-db"]!.AsObject();

    private async Task<(int Exit, string Error)> ValidateAsync()
    {
        var error = new StringWriter();
        var exit = await CliApp.InvokeAsync(["validate", "--config", _config.Write()], new StringWriter(), error);
        return (exit, error.ToString());
    }

    [Fact]
    public async Task A_mysql_listener_validates_with_port_3306_by_default()
    {
        var (exit, error) = await ValidateAsync();
        Assert.True(exit == 0, error);
    }

    [Fact]
    public async Task Rsa_keys_with_verified_tls_and_a_file_that_is_no_key_are_reported()
    {
        ListenerNode["MySql"] = new JsonObject { ["AllowPublicKeyRetrieval"] = true };
        var (exit, error) = await ValidateAsync();
        Assert.Equal(2, exit);
        Assert.Contains(Listener + ":MySql: ServerPublicKeyFile and AllowPublicKeyRetrieval apply only with Tls:Mode Require or Disable", error);

        ListenerNode["Tls"] = new JsonObject { ["Mode"] = "Disable" };
        ListenerNode["MySql"] = new JsonObject { ["ServerPublicKeyFile"] = _config.SecretFile("not-a-key.pem", "hello") };
        (exit, error) = await ValidateAsync();
        Assert.Equal(2, exit);
        Assert.Contains(Listener + ":MySql:ServerPublicKeyFile: file", error);

        using var rsa = RSA.Create(2048);
        ListenerNode["MySql"] = new JsonObject { ["ServerPublicKeyFile"] = _config.SecretFile("server-key.pem", rsa.ExportSubjectPublicKeyInfoPem()) };
        (exit, error) = await ValidateAsync();
        Assert.True(exit == 0, error);
    }

    [Fact]
    public async Task The_mysql_section_on_another_kind_is_reported()
    {
        _config.RouteListener("api", "https://api.example.com");
        _config.Section["Listeners"]!["api"]!["MySql"] = new JsonObject { ["AllowPublicKeyRetrieval"] = true };
        var (exit, error) = await ValidateAsync();
        Assert.Equal(2, exit);
        Assert.Contains("SecretlessProxy:Listeners:api:MySql: applies to MySql listeners only", error);
    }

    public void Dispose() => _config.Dispose();
}
