using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>The forward-mode keys get the same key-named errors as everything else.</summary>
public sealed class ForwardConfigErrorTests : IDisposable
{
    private readonly TestConfig _config = new();

    public ForwardConfigErrorTests()
    {
        _config.ForwardListener("egress", [443])
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", "k") })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["api.example.com"]), "key", "X-Key", "{token}"));
    }

    private async Task<(int Exit, string Error)> ValidateAsync()
    {
        var error = new StringWriter();
        var exit = await CliApp.InvokeAsync(["validate", "--config", _config.Write()], new StringWriter(), error);
        return (exit, error.ToString());
    }

    [Fact]
    public async Task Valid_forward_configuration_passes()
    {
        var (exit, error) = await ValidateAsync();

        Assert.True(exit == 0, error);
    }

    [Fact]
    public async Task Forward_listener_without_a_local_ca_is_an_error()
    {
        _config.Section.Remove("LocalCa");

        var (exit, error) = await ValidateAsync();

        Assert.Equal(2, exit);
        Assert.Contains("SecretlessProxy:LocalCa: is required by a Forward listener", error);
    }

    [Theory]
    [InlineData("{\"Directory\":\"ca\",\"CertFile\":\"c.pem\",\"KeyFile\":\"k.pem\"}", "SecretlessProxy:LocalCa: give Directory, or CertFile and KeyFile, not both")]
    [InlineData("{\"CertFile\":\"c.pem\"}", "SecretlessProxy:LocalCa: give Directory, or both CertFile and KeyFile")]
    public async Task Local_ca_needs_a_directory_or_a_certificate_and_key(string localCa, string expected)
    {
        _config.Set("LocalCa", JsonNode.Parse(localCa));

        var (exit, error) = await ValidateAsync();

        Assert.Equal(2, exit);
        Assert.Contains(expected, error);
    }

    [Fact]
    public async Task Mounted_ca_files_must_exist()
    {
        _config.Set("LocalCa", new JsonObject { ["CertFile"] = "/nonexistent/ca.crt", ["KeyFile"] = "/nonexistent/ca.key" });

        var (exit, error) = await ValidateAsync();

        Assert.Equal(2, exit);
        Assert.Contains("SecretlessProxy:LocalCa:CertFile: file '/nonexistent/ca.crt' does not exist", error);
        Assert.Contains("SecretlessProxy:LocalCa:KeyFile: file '/nonexistent/ca.key' does not exist", error);
    }

    [Fact]
    public async Task Forward_listener_with_an_upstream_or_a_bad_port_and_a_route_listener_with_connect_ports_are_errors()
    {
        ((JsonObject)_config.Section["Listeners"]!["egress"]!)["Upstream"] = "http://127.0.0.1:9000";
        ((JsonObject)_config.Section["Listeners"]!["egress"]!)["AllowedConnectPorts"] = new JsonArray(443, 0);
        _config.RouteListener("route", "http://127.0.0.1:9000");
        ((JsonObject)_config.Section["Listeners"]!["route"]!)["AllowedConnectPorts"] = new JsonArray(443);

        var (exit, error) = await ValidateAsync();

        Assert.Equal(2, exit);
        Assert.Contains("SecretlessProxy:Listeners:egress:Upstream: is not used by a Forward listener", error);
        Assert.Contains("SecretlessProxy:Listeners:egress:AllowedConnectPorts:1", error);
        Assert.Contains("SecretlessProxy:Listeners:route:AllowedConnectPorts: applies to Forward listeners only", error);
    }

    [Fact]
    public async Task Trusted_ca_file_must_exist()
    {
        _config.Set("Upstreams", new JsonObject { ["TrustedCaFile"] = "/nonexistent/extra-ca.pem" });

        var (exit, error) = await ValidateAsync();

        Assert.Equal(2, exit);
        Assert.Contains("SecretlessProxy:Upstreams:TrustedCaFile: file '/nonexistent/extra-ca.pem' does not exist", error);
    }

    public void Dispose() => _config.Dispose();
}
