using System.Net;
using Microsoft.Extensions.Configuration;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Policy;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// <c>SecretlessProxy__Listeners__payments__Upstream</c> and friends override single entries of the
/// named maps. The environment provider turns <c>__</c> into <c>:</c>; an in-memory source with the
/// same keys, layered above the file, stands in for it here so that no test touches the process environment.
/// </summary>
public sealed class EnvironmentOverrideTests : IDisposable
{
    private readonly BaselineConfig _config = new();
    private readonly HttpMessageInvoker _tokenClient = new(new SocketsHttpHandler());

    private ConfigLoadResult Compile(Dictionary<string, string?> overrides)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(_config.Write(), optional: false, reloadOnChange: false)
            .AddInMemoryCollection(overrides)
            .Build();
        return new ConfigLoader(TimeProvider.System, _tokenClient).Compile(configuration, _config.Files.Directory, checkFiles: true);
    }

    [Fact]
    public void Override_replaces_one_listener_value()
    {
        var result = Compile(new() { ["SecretlessProxy:Listeners:payments:Upstream"] = "https://payments.example.com" });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var listener = result.Snapshot!.Listeners["payments"];
        Assert.Equal(new Uri("https://payments.example.com"), listener.Upstream);
        Assert.Equal("127.0.0.1", ((IPEndPoint)listener.BindEndPoint).Address.ToString());
    }

    [Fact]
    public void Override_keys_are_case_insensitive_like_environment_variables()
    {
        var result = Compile(new() { ["SECRETLESSPROXY:LISTENERS:PAYMENTS:UPSTREAM"] = "http://10.0.0.5:8080" });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Single(result.Snapshot!.Listeners);
        Assert.Equal(new Uri("http://10.0.0.5:8080"), result.Snapshot.Listeners["payments"].Upstream);
    }

    [Fact]
    public void Override_can_add_a_whole_listener()
    {
        var result = Compile(new()
        {
            ["SecretlessProxy:Listeners:orders:Mode"] = "Route",
            ["SecretlessProxy:Listeners:orders:Url"] = "http://127.0.0.1:0",
            ["SecretlessProxy:Listeners:orders:Upstream"] = "http://127.0.0.1:9001",
            ["SecretlessProxy:Listeners:orders:Unmatched"] = "PassThrough",
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(2, result.Snapshot!.Listeners.Count);
        Assert.Equal(UnmatchedBehavior.PassThrough, result.Snapshot.Listeners["orders"].Unmatched);
        Assert.Equal(UnmatchedBehavior.Deny, result.Snapshot.Listeners["payments"].Unmatched);
    }

    [Fact]
    public void Override_changes_which_credential_a_policy_uses()
    {
        var result = Compile(new() { ["SecretlessProxy:Policies:legacy-key:Credential"] = "payments-token" });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var policy = result.Snapshot!.Policies.Policies.Single(p => p.Name == "legacy-key");
        Assert.Equal("payments-token", policy.CredentialName);
    }

    [Fact]
    public void Bad_override_is_reported_at_its_key()
    {
        var result = Compile(new() { ["SecretlessProxy:Listeners:payments:Upstream"] = "ftp://payments.example.com" });

        Assert.False(result.IsValid);
        var error = Assert.Single(result.Errors);
        Assert.Equal("SecretlessProxy:Listeners:payments:Upstream", error.Key);
        Assert.Contains("'ftp://payments.example.com' is not an absolute http or https URL", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Override_pointing_at_a_missing_secret_file_is_reported()
    {
        var missing = Path.Combine(_config.Files.Directory, "rotated-away");

        var result = Compile(new() { ["SecretlessProxy:Credentials:static-key:Path"] = missing });

        var error = Assert.Single(result.Errors);
        Assert.Equal("SecretlessProxy:Credentials:static-key:Path", error.Key);
        Assert.Equal("file '" + missing + "' does not exist", error.Message);
    }

    [Fact]
    public void Value_that_cannot_be_converted_names_the_key()
    {
        var result = Compile(new() { ["SecretlessProxy:Policies:legacy-key:Match:Ports:0"] = "abc" });

        Assert.False(result.IsValid);
        var error = Assert.Single(result.Errors);
        Assert.Contains("SecretlessProxy:Policies:legacy-key:Match:Ports:0", error.ToString(), StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _tokenClient.Dispose();
        _config.Dispose();
    }
}
