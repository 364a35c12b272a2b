using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>Configurations that pass the schema but cannot work: the validator names the key and says why.</summary>
public sealed class SemanticErrorTests : IDisposable
{
    private const string Listener = Root + ":Listeners:payments";
    private const string LegacyPolicy = Root + ":Policies:legacy-key";

    private readonly BaselineConfig _config = new();

    [Fact]
    public async Task Policy_naming_an_unknown_credential()
    {
        _config.Policy("legacy-key")["Credential"] = "static-kee";

        var result = await _config.ValidateAsync();

        AssertProblem(result, LegacyPolicy + ":Credential", "names unknown credential 'static-kee'");
        AssertOnlyKeys(result, LegacyPolicy + ":Credential");
    }

    [Theory]
    [InlineData("ftp://127.0.0.1:9000", "is not an absolute http or https URL")]
    [InlineData("127.0.0.1:9000", "is not an absolute http or https URL")]
    [InlineData("/relative/path", "is not an absolute http or https URL")]
    [InlineData("http://127.0.0.1:9000/?a=b", "must not contain user info, a query or a fragment")]
    public async Task Bad_upstream_url(string upstream, string message)
    {
        _config.Listener("payments")["Upstream"] = upstream;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Listener + ":Upstream", message);
        AssertOnlyKeys(result, Listener + ":Upstream");
    }

    [Fact]
    public async Task Upstream_with_user_info_is_rejected_without_echoing_the_password()
    {
        var password = "pw-" + Guid.NewGuid().ToString("N");
        _config.Listener("payments")["Upstream"] = "https://svc:" + password + "@payments.example.com/";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Listener + ":Upstream", "must not contain user info");
        AssertOnlyKeys(result, Listener + ":Upstream");
        Assert.DoesNotContain(password, result.Error + result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_url_with_user_info_is_rejected_without_echoing_the_password()
    {
        var password = "pw-" + Guid.NewGuid().ToString("N");
        _config.Credential("payments-token")["TokenUrl"] = "https://client:" + password + "@auth.example.com/token";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:payments-token:TokenUrl", "user info");
        Assert.DoesNotContain(password, result.Error + result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Non_http_upstream_with_user_info_is_rejected_without_echoing_the_password()
    {
        var password = "pw-" + Guid.NewGuid().ToString("N");
        _config.Listener("payments")["Upstream"] = "ftp://svc:" + password + "@payments.example.com/";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Listener + ":Upstream", "http");
        Assert.DoesNotContain(password, result.Error + result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ipv6_listener_url_without_port_is_rejected()
    {
        _config.Listener("payments")["Url"] = "http://[::80]";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Listener + ":Url", "must name a port");
    }

    [Theory]
    [InlineData("http://proxy.internal:8081", "'proxy.internal' is not an IP address or localhost")]
    [InlineData("http://127.0.0.1", "must name a port")]
    [InlineData("https://127.0.0.1:8443", "is not an http://address:port URL")]
    [InlineData("http://127.0.0.1:8081/prefix", "is not an http://address:port URL")]
    public async Task Bad_listener_url(string url, string message)
    {
        _config.Listener("payments")["Url"] = url;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Listener + ":Url", message);
        AssertOnlyKeys(result, Listener + ":Url");
    }

    [Theory]
    [InlineData("http://localhost:0")]
    [InlineData("http://0.0.0.0:0")]
    [InlineData("http://[::1]:0")]
    public async Task Listener_url_with_ip_or_localhost_is_accepted(string url)
    {
        _config.Listener("payments")["Url"] = url;

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Bad_admin_url_is_named()
    {
        _config.Section["Admin"] = new JsonObject { ["Url"] = "http://admin.local:9901" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Admin:Url", "'admin.local' is not an IP address or localhost");
        AssertOnlyKeys(result, Root + ":Admin:Url");
    }

    [Fact]
    public async Task Missing_client_secret_file()
    {
        var missing = Path.Combine(_config.Files.Directory, "no-such-client-secret");
        _config.Credential("payments-token")["ClientSecretFile"] = missing;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:payments-token:ClientSecretFile", "file '" + missing + "' does not exist");
        AssertOnlyKeys(result, Root + ":Credentials:payments-token:ClientSecretFile");
    }

    [Fact]
    public async Task Missing_file_credential_path()
    {
        var missing = Path.Combine(_config.Files.Directory, "no-such-api-key");
        _config.Credential("static-key")["Path"] = missing;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:static-key:Path", "file '" + missing + "' does not exist");
        AssertOnlyKeys(result, Root + ":Credentials:static-key:Path");
    }

    [Fact]
    public async Task Relative_secret_paths_resolve_against_the_config_folder()
    {
        Directory.CreateDirectory(Path.Combine(_config.Files.Directory, "secrets"));
        File.WriteAllText(Path.Combine(_config.Files.Directory, "secrets", "api-key"), "value\n");
        _config.Credential("static-key")["Path"] = "secrets/api-key";
        _config.Credential("payments-token")["ClientSecretFile"] = "secrets/missing";

        var result = await _config.ValidateAsync();

        var expected = Path.Combine(_config.Files.Directory, "secrets", "missing");
        AssertProblem(result, Root + ":Credentials:payments-token:ClientSecretFile", "file '" + expected + "' does not exist");
        AssertOnlyKeys(result, Root + ":Credentials:payments-token:ClientSecretFile");
    }

    [Fact]
    public async Task Missing_username_file()
    {
        var missing = Path.Combine(_config.Files.Directory, "no-such-user");
        _config.Credential("static-key")["UsernameFile"] = missing;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:static-key:UsernameFile", "file '" + missing + "' does not exist");
    }

    [Fact]
    public async Task Two_policies_with_equal_specificity_that_overlap_are_ambiguous()
    {
        _config.Files.Policy("legacy-key-2", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/legacy/"), "payments-token"));

        var result = await _config.ValidateAsync();

        Assert.Equal(2, result.ExitCode);
        var problem = Assert.Single(result.Problems);
        Assert.StartsWith(Root + ":Policies:legacy-key-2: ", problem, StringComparison.Ordinal);
        Assert.Contains("'legacy-key'", problem, StringComparison.Ordinal);
        Assert.Contains("equal specificity", problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Overlapping_policies_with_the_same_methods_are_ambiguous()
    {
        _config.Files.Policy("payments-read-too", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ["POST", "GET"]), "static-key"));

        var result = await _config.ValidateAsync();

        var problem = Assert.Single(result.Problems);
        Assert.StartsWith(Root + ":Policies:payments-read-too: ", problem, StringComparison.Ordinal);
        Assert.Contains("'payments-read'", problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Overlapping_wildcards_of_equal_length_are_ambiguous()
    {
        _config.Files.Policy("wild-a", TestConfig.HeaderPolicy(TestConfig.Match(["*.example.com"]), "static-key"));
        _config.Files.Policy("wild-b", TestConfig.HeaderPolicy(TestConfig.Match(["*.EXAMPLE.com"]), "payments-token"));

        var result = await _config.ValidateAsync();

        var problem = Assert.Single(result.Problems);
        Assert.StartsWith(Root + ":Policies:wild-b: ", problem, StringComparison.Ordinal);
        Assert.Contains("'wild-a'", problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Same_host_different_prefixes_are_not_ambiguous()
    {
        _config.Files.Policy("legacy-v2", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/legacy/v2/"), "payments-token"));

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Same_host_and_prefix_disjoint_methods_are_not_ambiguous()
    {
        _config.Files.Policy("payments-write", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/", ["POST"]), "static-key"));

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Exact_host_and_overlapping_wildcard_are_not_ambiguous()
    {
        _config.Files.Policy("api-exact", TestConfig.HeaderPolicy(TestConfig.Match(["api.example.com"], "/legacy/"), "payments-token"));
        _config.Files.Policy("api-wild", TestConfig.HeaderPolicy(TestConfig.Match(["*.example.com"], "/legacy/"), "static-key"));
        _config.Files.Policy("api-deeper-wild", TestConfig.HeaderPolicy(TestConfig.Match(["*.api.example.com"], "/legacy/"), "static-key"));

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Inject_with_no_method()
    {
        _config.Policy("legacy-key")["Inject"] = new JsonObject();

        var result = await _config.ValidateAsync();

        AssertProblem(result, LegacyPolicy + ":Inject", "say how to inject");
        AssertOnlyKeys(result, LegacyPolicy + ":Inject");
    }

    [Fact]
    public async Task Inject_with_two_methods()
    {
        _config.Policy("legacy-key")["Inject"] = new JsonObject { ["Header"] = "X-Api-Key", ["Format"] = "{token}", ["Query"] = "api_key" };

        var result = await _config.ValidateAsync();

        AssertProblem(result, LegacyPolicy + ":Inject", "give only one of Header, Basic, Query, AwsSigV4 and DatabaseLogin");
        AssertOnlyKeys(result, LegacyPolicy + ":Inject");
    }

    [Theory]
    [InlineData("Bearer token")]
    [InlineData("Bearer {Token}")]
    [InlineData("{token}{token}")]
    public async Task Format_without_exactly_one_token_placeholder(string format)
    {
        _config.Policy("legacy-key")["Inject"]!["Format"] = format;

        var result = await _config.ValidateAsync();

        AssertProblem(result, LegacyPolicy + ":Inject:Format", "must contain {token} exactly once");
        AssertOnlyKeys(result, LegacyPolicy + ":Inject:Format");
    }

    [Fact]
    public async Task Basic_injection_needs_a_username_on_the_credential()
    {
        _config.Policy("legacy-key")["Inject"] = new JsonObject { ["Basic"] = true };

        var result = await _config.ValidateAsync();

        AssertProblem(result, LegacyPolicy + ":Inject:Basic", "needs a user name: set Username or UsernameFile on the credential");
        AssertOnlyKeys(result, LegacyPolicy + ":Inject:Basic");
    }

    [Fact]
    public async Task Basic_injection_with_a_username_file_is_valid()
    {
        _config.Credential("static-key")["UsernameFile"] = _config.Files.SecretFile("user", "legacy-user");
        _config.Policy("legacy-key")["Inject"] = new JsonObject { ["Basic"] = true };

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Theory]
    [InlineData("Host")]
    [InlineData("host")]
    [InlineData("Content-Length")]
    [InlineData("Transfer-Encoding")]
    [InlineData("Connection")]
    public async Task Forbidden_header(string header)
    {
        _config.Policy("legacy-key")["Inject"]!["Header"] = header;

        var result = await _config.ValidateAsync();

        AssertProblem(result, LegacyPolicy + ":Inject:Header", "'" + header + "' is managed by the HTTP connection");
        AssertOnlyKeys(result, LegacyPolicy + ":Inject:Header");
    }

    [Fact]
    public async Task Header_name_with_invalid_characters()
    {
        _config.Policy("legacy-key")["Inject"]!["Header"] = "X Api Key";

        var result = await _config.ValidateAsync();

        AssertProblem(result, LegacyPolicy + ":Inject:Header", "is not a valid header name");
    }

    [Fact]
    public async Task Admin_and_listener_on_the_same_port()
    {
        // Fixed ports are fine here: validation rejects the file before anything binds.
        _config.Section["Admin"] = new JsonObject { ["Url"] = "http://127.0.0.1:18081" };
        _config.Listener("payments")["Url"] = "http://127.0.0.1:18081";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Listener + ":Url", "port 18081 is already used by " + Root + ":Admin:Url");
        AssertOnlyKeys(result, Listener + ":Url");
    }

    [Fact]
    public async Task Two_listeners_on_the_same_port()
    {
        _config.Listener("payments")["Url"] = "http://127.0.0.1:18082";
        _config.Files.RouteListener("orders", "http://127.0.0.1:9001");
        _config.Listener("orders")["Url"] = "http://127.0.0.1:18082";

        var result = await _config.ValidateAsync();

        Assert.Equal(2, result.ExitCode);
        var problem = Assert.Single(result.Problems);
        Assert.Contains("port 18082 is already used by", problem, StringComparison.Ordinal);
        Assert.Contains(Root + ":Listeners:orders:Url", problem, StringComparison.Ordinal);
        Assert.Contains(Root + ":Listeners:payments:Url", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.5)]
    [InlineData(1.5)]
    public async Task RefreshAt_out_of_range(double refreshAt)
    {
        _config.Credential("payments-token")["RefreshAt"] = refreshAt;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:payments-token:RefreshAt", "must be a fraction of the lifetime between 0 and 1");
        AssertOnlyKeys(result, Root + ":Credentials:payments-token:RefreshAt");
    }

    [Fact]
    public async Task RefreshAt_inside_the_range_is_valid()
    {
        _config.Credential("payments-token")["RefreshAt"] = 0.5;

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Username_and_username_file_both_set()
    {
        _config.Credential("static-key")["Username"] = "legacy-user";
        _config.Credential("static-key")["UsernameFile"] = _config.Files.SecretFile("user", "legacy-user");

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Credentials:static-key:UsernameFile", "give Username or UsernameFile, not both");
        AssertOnlyKeys(result, Root + ":Credentials:static-key:UsernameFile");
    }

    [Fact]
    public async Task No_listeners_at_all()
    {
        _config.Section["Listeners"] = new JsonObject();

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners", "at least one listener is required");
        AssertOnlyKeys(result, Root + ":Listeners");
    }

    [Fact]
    public async Task No_listeners_section()
    {
        _config.Section.Remove("Listeners");

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners", "at least one listener is required");
        AssertOnlyKeys(result, Root + ":Listeners");
    }

    [Fact]
    public async Task OAuth2_credential_missing_its_required_keys()
    {
        var credential = _config.Credential("payments-token");
        credential.Remove("TokenUrl");
        credential.Remove("ClientId");
        credential.Remove("ClientSecretFile");

        var result = await _config.ValidateAsync();

        var key = Root + ":Credentials:payments-token";
        AssertProblem(result, key + ":TokenUrl", "is required");
        AssertProblem(result, key + ":ClientId", "is required");
        AssertProblem(result, key + ":ClientSecretFile", "never from the config");
        AssertOnlyKeys(result, key + ":TokenUrl", key + ":ClientId", key + ":ClientSecretFile");
    }

    [Fact]
    public async Task Invalid_host_pattern_is_named_by_index()
    {
        _config.Policy("legacy-key")["Match"]!["Hosts"] = new JsonArray("127.0.0.1", "api.*.example.com");

        var result = await _config.ValidateAsync();

        AssertProblem(result, LegacyPolicy + ":Match:Hosts:1", "'api.*.example.com' is not a host name or *.suffix wildcard");
        AssertOnlyKeys(result, LegacyPolicy + ":Match:Hosts:1");
    }

    public void Dispose() => _config.Dispose();
}
