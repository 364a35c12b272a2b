using System.Text.Json.Nodes;
using Xunit;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>What binding alone would silently ignore or mangle: the schema check names the key.</summary>
public sealed class SchemaErrorTests : IDisposable
{
    private const string NotAKnownKey = "is not a known key";

    private readonly BaselineConfig _config = new();

    [Fact]
    public async Task Misspelt_listener_key_is_named()
    {
        var listener = _config.Listener("payments");
        listener["Upstrem"] = listener["Upstream"]!.GetValue<string>();
        listener.Remove("Upstream");

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners:payments:Upstrem", NotAKnownKey);
        // Binding ignored the misspelt key, so the real one is missing too.
        AssertProblem(result, Root + ":Listeners:payments:Upstream", "is required");
        AssertOnlyKeys(result, Root + ":Listeners:payments:Upstrem", Root + ":Listeners:payments:Upstream");
    }

    [Fact]
    public async Task Misspelt_key_in_a_listener_whose_name_has_a_dot_is_named()
    {
        _config.Section["Listeners"] = new JsonObject
        {
            ["payments.v1"] = new JsonObject { ["Mode"] = "Route", ["Url"] = "http://127.0.0.1:0", ["Upstrem"] = "http://127.0.0.1:9000" },
        };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners:payments.v1:Upstrem", NotAKnownKey);
        AssertOnlyKeys(result, Root + ":Listeners:payments.v1:Upstrem", Root + ":Listeners:payments.v1:Upstream");
    }

    [Fact]
    public async Task Misspelt_key_at_section_level_is_named()
    {
        _config.Section["Unmatchd"] = "Deny";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Unmatchd", NotAKnownKey);
        AssertOnlyKeys(result, Root + ":Unmatchd");
    }

    [Fact]
    public async Task Misspelt_policy_match_key_is_named()
    {
        _config.Policy("legacy-key")["Match"]!["PathPrefx"] = "/legacy/";
        _config.Policy("legacy-key")["Match"]!.AsObject().Remove("PathPrefix");

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Policies:legacy-key:Match:PathPrefx", NotAKnownKey);
    }

    [Theory]
    [InlineData("ClientSecret")]
    [InlineData("Secret")]
    [InlineData("Password")]
    [InlineData("Token")]
    public async Task Inline_secret_under_a_credential_is_rejected_without_echoing_it(string key)
    {
        var secret = "inline-secret-" + Guid.NewGuid().ToString("N");
        _config.Credential("payments-token")[key] = secret;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:payments-token:" + key, NotAKnownKey);
        Assert.Contains("secret written inline", result.Error, StringComparison.Ordinal);
        AssertOnlyKeys(result, Root + ":Credentials:payments-token:" + key);
        Assert.DoesNotContain(secret, result.Error + result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_listener_mode_is_named()
    {
        _config.Listener("payments")["Mode"] = "Bogus";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners:payments:Mode", "is not one of the allowed values");
        AssertProblem(result, Root + ":Listeners:payments:Mode", "'Bogus' is not a listener mode");
        AssertOnlyKeys(result, Root + ":Listeners:payments:Mode");
    }

    [Fact]
    public async Task Unknown_unmatched_behaviour_is_named()
    {
        _config.Section["Unmatched"] = "Sometimes";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Unmatched", "'Sometimes' is not valid; expected Deny, PassThrough or Observe");
        AssertOnlyKeys(result, Root + ":Unmatched");
    }

    [Fact]
    public async Task Unknown_credential_source_is_named()
    {
        _config.Credential("static-key")["Source"] = "Keychain";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:static-key:Source", "is not one of the allowed values");
        AssertProblem(result, Root + ":Credentials:static-key:Source", "'Keychain' is not a credential source");
    }

    [Fact]
    public async Task Ports_given_as_a_string_is_a_type_error()
    {
        _config.Policy("legacy-key")["Match"]!["Ports"] = "abc";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Policies:legacy-key:Match:Ports", "must be an array");
    }

    [Fact]
    public async Task Port_that_is_not_a_number_is_a_type_error()
    {
        _config.Policy("legacy-key")["Match"]!["Ports"] = new JsonArray("abc");

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Policies:legacy-key:Match:Ports:0", "must be an integer");
    }

    [Fact]
    public async Task Port_out_of_range_is_named()
    {
        _config.Policy("legacy-key")["Match"]!["Ports"] = new JsonArray(70000);

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Policies:legacy-key:Match:Ports:0", "is out of range");
        AssertProblem(result, Root + ":Policies:legacy-key:Match:Ports:0", "70000 is not a TCP port");
    }

    [Fact]
    public async Task Basic_given_as_a_string_is_a_type_error()
    {
        _config.Policy("legacy-key")["Inject"] = new JsonObject { ["Basic"] = "yes" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Policies:legacy-key:Inject:Basic", "must be true or false");
    }

    [Fact]
    public async Task Listener_without_url_is_named()
    {
        _config.Listener("payments").Remove("Url");

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners:payments:Url", "is required");
        AssertOnlyKeys(result, Root + ":Listeners:payments:Url");
    }

    [Fact]
    public async Task Timespan_in_the_wrong_format_is_named()
    {
        _config.Credential("payments-token")["Timeout"] = "10s";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:payments-token:Timeout", "does not have the expected format");
    }

    public void Dispose() => _config.Dispose();
}
