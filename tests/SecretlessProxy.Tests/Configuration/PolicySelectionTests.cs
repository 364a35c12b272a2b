using Microsoft.Extensions.Configuration;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// Which policy a request gets, on a compiled snapshot: the most specific match wins, whatever the
/// declaration order; a request no policy matches is denied or passed through as configured.
/// </summary>
public sealed class PolicySelectionTests : IDisposable
{
    private readonly HttpMessageInvoker _tokenClient = new(new SocketsHttpHandler());

    private sealed record P(string Name, string[] Hosts, string? PathPrefix = null, string[]? Methods = null, int[]? Ports = null);

    private ProxySnapshot Compile(params P[] policies)
    {
        var values = new Dictionary<string, string?>
        {
            ["SecretlessProxy:Admin:Url"] = "http://127.0.0.1:0",
            ["SecretlessProxy:Listeners:api:Mode"] = "Route",
            ["SecretlessProxy:Listeners:api:Url"] = "http://127.0.0.1:0",
            ["SecretlessProxy:Listeners:api:Upstream"] = "https://api.example.com",
            ["SecretlessProxy:Listeners:open:Mode"] = "Route",
            ["SecretlessProxy:Listeners:open:Url"] = "http://127.0.0.1:0",
            ["SecretlessProxy:Listeners:open:Upstream"] = "https://open.example.org",
            ["SecretlessProxy:Listeners:open:Unmatched"] = "PassThrough",
            ["SecretlessProxy:Credentials:key:Source"] = "File",
            ["SecretlessProxy:Credentials:key:Path"] = "/nonexistent/key",
        };
        foreach (var p in policies)
        {
            var key = "SecretlessProxy:Policies:" + p.Name;
            values[key + ":Credential"] = "key";
            values[key + ":Inject:Header"] = "X-Policy";
            values[key + ":Inject:Format"] = "{token}";
            for (var i = 0; i < p.Hosts.Length; i++) values[key + ":Match:Hosts:" + i] = p.Hosts[i];
            if (p.PathPrefix is not null) values[key + ":Match:PathPrefix"] = p.PathPrefix;
            for (var i = 0; i < (p.Methods?.Length ?? 0); i++) values[key + ":Match:Methods:" + i] = p.Methods![i];
            for (var i = 0; i < (p.Ports?.Length ?? 0); i++) values[key + ":Match:Ports:" + i] = p.Ports![i].ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var result = new ConfigLoader(TimeProvider.System, _tokenClient).Compile(configuration, Path.GetTempPath(), checkFiles: false);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return result.Snapshot!;
    }

    private static PolicyDecision Evaluate(ProxySnapshot snapshot, string host, string path = "/", string method = "GET", int port = 443, UnmatchedBehavior unmatched = UnmatchedBehavior.Deny) =>
        snapshot.Policies.Evaluate(new RequestDestination("https", host, port, method, path), unmatched, PolicyContext.Anonymous(DateTimeOffset.UtcNow));

    private static string? Winner(ProxySnapshot snapshot, string host, string path = "/", string method = "GET", int port = 443)
    {
        var decision = Evaluate(snapshot, host, path, method, port);
        return decision.Kind == DecisionKind.Allow ? decision.Policy!.Name : null;
    }

    [Theory]
    [InlineData("a-exact", "b-wild")]
    [InlineData("b-exact", "a-wild")]
    public void Exact_host_beats_wildcard_whatever_the_names(string exact, string wildcard)
    {
        var snapshot = Compile(new P(wildcard, ["*.example.com"]), new P(exact, ["api.example.com"]));

        Assert.Equal(exact, Winner(snapshot, "api.example.com"));
        Assert.Equal(wildcard, Winner(snapshot, "other.example.com"));
    }

    [Fact]
    public void Exact_host_beats_wildcard_even_with_a_longer_path_prefix()
    {
        var snapshot = Compile(new P("exact", ["api.example.com"], "/"), new P("wild", ["*.example.com"], "/v1/admin/"));

        Assert.Equal("exact", Winner(snapshot, "api.example.com", "/v1/admin/users"));
    }

    [Fact]
    public void Longer_wildcard_suffix_beats_shorter()
    {
        var snapshot = Compile(new P("broad", ["*.example.com"]), new P("narrow", ["*.eu.example.com"]));

        Assert.Equal("narrow", Winner(snapshot, "api.eu.example.com"));
        Assert.Equal("broad", Winner(snapshot, "api.us.example.com"));
    }

    [Theory]
    [InlineData("a-short", "b-long")]
    [InlineData("b-short", "a-long")]
    public void Longer_path_prefix_beats_shorter(string shorter, string longer)
    {
        var snapshot = Compile(new P(shorter, ["api.example.com"], "/v1/"), new P(longer, ["api.example.com"], "/v1/admin/"));

        Assert.Equal(longer, Winner(snapshot, "api.example.com", "/v1/admin/users"));
        Assert.Equal(shorter, Winner(snapshot, "api.example.com", "/v1/users"));
        Assert.Null(Winner(snapshot, "api.example.com", "/v2/users"));
    }

    [Fact]
    public void Policy_naming_methods_beats_one_that_does_not()
    {
        var snapshot = Compile(new P("any", ["api.example.com"], "/v1/"), new P("reads", ["api.example.com"], "/v1/", ["GET"]));

        Assert.Equal("reads", Winner(snapshot, "api.example.com", "/v1/x", "GET"));
        Assert.Equal("any", Winner(snapshot, "api.example.com", "/v1/x", "DELETE"));
    }

    [Theory]
    [InlineData("a.example.com", true)]
    [InlineData("a.b.example.com", true)]
    [InlineData("x.y.z.example.com", true)]
    [InlineData("example.com", false)]
    [InlineData("evil-example.com", false)]
    [InlineData("aexample.com", false)]
    [InlineData("example.com.evil.org", false)]
    [InlineData("a.example.org", false)]
    public void Wildcard_matches_one_or_more_labels_below_the_suffix_only(string host, bool matches)
    {
        var snapshot = Compile(new P("wild", ["*.example.com"]));

        Assert.Equal(matches ? "wild" : null, Winner(snapshot, host));
    }

    [Theory]
    [InlineData("API.EXAMPLE.COM")]
    [InlineData("Api.Example.Com")]
    [InlineData("api.example.com")]
    public void Host_match_is_case_insensitive(string host)
    {
        var snapshot = Compile(new P("exact", ["Api.Example.com"]), new P("wild", ["*.Other.COM"]));

        Assert.Equal("exact", Winner(snapshot, host));
        Assert.Equal("wild", Winner(snapshot, host.Replace("example", "other", StringComparison.OrdinalIgnoreCase)));
    }

    [Fact]
    public void Path_prefix_is_case_sensitive()
    {
        var snapshot = Compile(new P("v1", ["api.example.com"], "/v1/"));

        Assert.Equal("v1", Winner(snapshot, "api.example.com", "/v1/charges"));
        Assert.Null(Winner(snapshot, "api.example.com", "/V1/charges"));
        Assert.Null(Winner(snapshot, "api.example.com", "/v1"));
    }

    [Fact]
    public void Method_filter()
    {
        var snapshot = Compile(new P("reads", ["api.example.com"], Methods: ["GET", "head"]));

        Assert.Equal("reads", Winner(snapshot, "api.example.com", method: "GET"));
        Assert.Equal("reads", Winner(snapshot, "api.example.com", method: "HEAD"));
        Assert.Null(Winner(snapshot, "api.example.com", method: "POST"));
        Assert.Null(Winner(snapshot, "api.example.com", method: "DELETE"));
    }

    [Fact]
    public void Port_filter()
    {
        var snapshot = Compile(new P("tls", ["api.example.com"], Ports: [443, 8443]));

        Assert.Equal("tls", Winner(snapshot, "api.example.com", port: 443));
        Assert.Equal("tls", Winner(snapshot, "api.example.com", port: 8443));
        Assert.Null(Winner(snapshot, "api.example.com", port: 80));
    }

    [Fact]
    public void Policy_naming_ports_beats_one_that_does_not()
    {
        var snapshot = Compile(new P("any-port", ["api.example.com"]), new P("tls", ["api.example.com"], Ports: [443]));

        Assert.Equal("tls", Winner(snapshot, "api.example.com", port: 443));
        Assert.Equal("any-port", Winner(snapshot, "api.example.com", port: 80));
    }

    [Fact]
    public void Policy_with_several_hosts_matches_each()
    {
        var snapshot = Compile(new P("multi", ["api.example.com", "*.example.net"]));

        Assert.Equal("multi", Winner(snapshot, "api.example.com"));
        Assert.Equal("multi", Winner(snapshot, "x.example.net"));
        Assert.Null(Winner(snapshot, "example.net"));
    }

    [Fact]
    public void Allow_decision_carries_the_policy_and_its_credential()
    {
        var snapshot = Compile(new P("exact", ["api.example.com"]));

        var decision = Evaluate(snapshot, "api.example.com");

        Assert.Equal(DecisionKind.Allow, decision.Kind);
        Assert.Equal("allow", decision.Name);
        Assert.Equal("exact", decision.Policy!.Name);
        Assert.Equal("key", decision.Policy.CredentialName);
        Assert.Contains("exact", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Unmatched_deny_and_pass_through()
    {
        var snapshot = Compile(new P("exact", ["api.example.com"]));

        var denied = Evaluate(snapshot, "other.example.com", unmatched: UnmatchedBehavior.Deny);
        var passed = Evaluate(snapshot, "other.example.com", unmatched: UnmatchedBehavior.PassThrough);

        Assert.Equal(DecisionKind.Deny, denied.Kind);
        Assert.Equal("deny", denied.Name);
        Assert.Null(denied.Policy);
        Assert.Equal(DecisionKind.PassThrough, passed.Kind);
        Assert.Equal("passthrough", passed.Name);
        Assert.Null(passed.Policy);
    }

    [Fact]
    public void Matching_policy_is_allowed_whatever_the_unmatched_behaviour()
    {
        var snapshot = Compile(new P("exact", ["api.example.com"]));

        Assert.Equal(DecisionKind.Allow, Evaluate(snapshot, "api.example.com", unmatched: UnmatchedBehavior.PassThrough).Kind);
    }

    [Fact]
    public void Unmatched_defaults_to_deny_and_a_listener_can_override_it()
    {
        var snapshot = Compile(new P("exact", ["api.example.com"]));

        Assert.Equal(UnmatchedBehavior.Deny, snapshot.Listeners["api"].Unmatched);
        Assert.Equal(UnmatchedBehavior.PassThrough, snapshot.Listeners["open"].Unmatched);
    }

    [Fact]
    public void No_policies_denies_everything()
    {
        var snapshot = Compile();

        Assert.Equal(DecisionKind.Deny, Evaluate(snapshot, "api.example.com").Kind);
    }

    public void Dispose() => _tokenClient.Dispose();
}
