using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Configuration;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Identity.Spiffe;

/// <summary>Configuration mistakes around the SPIFFE Workload API, each named by its key.</summary>
public sealed class SpiffeConfigErrorTests : IDisposable
{
    private const string IdentityKey = Root + ":Identity";

    private readonly BaselineConfig _config = new();

    public void Dispose() => _config.Dispose();

    [Fact]
    public async Task A_valid_spiffe_identity_validates_and_makes_identity_conditions_possible()
    {
        _config.Section["Identity"] = new JsonObject { ["Source"] = "SpiffeWorkloadApi", ["Socket"] = "unix:///run/spire/sockets/agent.sock", ["Audience"] = "sts.example.com" };
        _config.Policy("legacy-key")["Identity"] = new JsonObject { ["Subjects"] = new JsonArray("spiffe://example.org/ns/payments/sa/api") };

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task The_socket_must_be_a_unix_socket()
    {
        _config.Section["Identity"] = new JsonObject { ["Source"] = "SpiffeWorkloadApi", ["Socket"] = "tcp://127.0.0.1:8081", ["Audience"] = "sts.example.com" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, IdentityKey + ":Socket", "is not a Unix socket");
        AssertOnlyKeys(result, IdentityKey + ":Socket");
    }

    [Fact]
    public async Task An_audience_is_required_and_token_file_keys_do_not_apply()
    {
        _config.Section["Identity"] = new JsonObject { ["Source"] = "SpiffeWorkloadApi", ["Socket"] = "/run/spire/sockets/agent.sock", ["JwksUrl"] = "https://example.org/jwks" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, IdentityKey + ":Audience", "is required");
        AssertProblem(result, IdentityKey + ":JwksUrl", "does not apply to Source SpiffeWorkloadApi");
        AssertOnlyKeys(result, IdentityKey + ":Audience", IdentityKey + ":JwksUrl");
    }

    [Fact]
    public async Task A_spiffe_id_must_be_one()
    {
        _config.Section["Identity"] = new JsonObject { ["Source"] = "SpiffeWorkloadApi", ["Socket"] = "/run/spire/sockets/agent.sock", ["Audience"] = "a", ["SpiffeId"] = "spiffe://Example.org/x" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, IdentityKey + ":SpiffeId", "trust domain");
        AssertOnlyKeys(result, IdentityKey + ":SpiffeId");
    }

    [Fact]
    public async Task Spiffe_keys_do_not_apply_to_a_token_file()
    {
        _config.Section["Identity"] = new JsonObject { ["Source"] = "TokenFile", ["Path"] = "token", ["Socket"] = "/run/spire/sockets/agent.sock" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, IdentityKey + ":Socket", "applies only to Source SpiffeWorkloadApi");
        AssertOnlyKeys(result, IdentityKey + ":Socket");
    }
}
