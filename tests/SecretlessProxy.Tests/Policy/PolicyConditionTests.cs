using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Policy;

/// <summary>
/// Conditions on a policy (Caller, Identity, When, Labels), decided per request through a real
/// proxy: the caller is this test process or a real curl, resolved by the kernel's tables.
/// </summary>
public sealed class PolicyConditionTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _generalKey = "general-" + Guid.NewGuid().ToString("N");
    private readonly string _privilegedKey = "privileged-" + Guid.NewGuid().ToString("N");

    public PolicyConditionTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("upstream"));
        _config.RouteListener("api", _upstream.LoopbackUrl())
            .Credential("general", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("general", _generalKey) })
            .Credential("privileged", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("privileged", _privilegedKey) });
    }

    /// <summary>This process's uid and executable, as the kernel reports them.</summary>
    private static int OwnUid => int.Parse(File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);

    private static string OwnExecutable => new FileInfo("/proc/self/exe").LinkTarget!;

    private static string Sha256Of(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    private static JsonObject Conditional(string credential, string? pathPrefix = null, JsonObject? caller = null, JsonObject? identity = null, JsonObject? when = null, JsonObject? labels = null)
    {
        var policy = TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], pathPrefix), credential, "X-Api-Key", "{token}");
        if (caller is not null) policy["Caller"] = caller;
        if (identity is not null) policy["Identity"] = identity;
        if (when is not null) policy["When"] = when;
        if (labels is not null) policy["Labels"] = labels;
        return policy;
    }

    private static string Detail(string problemJson) => JsonDocument.Parse(problemJson).RootElement.GetProperty("detail").GetString()!;

    private static JsonArray Array(params JsonNode[] values) => new(values);

    private async Task<ProxyHarness> StartAsync(TimeProvider? time = null)
    {
        var harness = await ProxyHarness.StartAsync(_config.Write(), time);
        harness.NeverEmit(_generalKey, _privilegedKey);
        return harness;
    }

    private string? LastKeySeen() => _upstream.LogEntries.LastOrDefault()?.RequestMessage.Headers?
        .FirstOrDefault(h => string.Equals(h.Key, "X-Api-Key", StringComparison.OrdinalIgnoreCase)).Value?.Single();

    private static async Task<JsonElement> LastDecisionAsync(ProxyHarness proxy)
    {
        using var admin = new HttpClient();
        var json = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=1"));
        return JsonDocument.Parse(json).RootElement.GetProperty("decisions")[0].Clone();
    }

    [Fact]
    public async Task Caller_uid_executable_and_hash_of_the_calling_process_allow_it()
    {
        _config.Policy("mine", Conditional("privileged", caller: new JsonObject
        {
            ["Uids"] = Array(OwnUid),
            ["Executables"] = Array(OwnExecutable),
            ["ExecutableSha256"] = Array(Sha256Of(OwnExecutable).ToUpperInvariant()),
        }));
        await using var proxy = await StartAsync();

        var (response, _) = await proxy.GetAsync("api", "/v1/x");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(_privilegedKey, LastKeySeen());
        var decision = await LastDecisionAsync(proxy);
        var caller = decision.GetProperty("caller");
        Assert.Equal(OwnUid, caller.GetProperty("uid").GetInt32());
        Assert.Equal(Environment.ProcessId, caller.GetProperty("pid").GetInt32());
        Assert.Equal(OwnExecutable, caller.GetProperty("executable").GetString());
        Assert.Equal(Sha256Of(OwnExecutable), caller.GetProperty("sha256").GetString());
    }

    [Theory]
    [InlineData("uid", "does not allow the calling process's uid")]
    [InlineData("executable", "does not allow the calling executable")]
    [InlineData("hash", "does not allow the calling executable's SHA-256")]
    public async Task A_caller_that_fails_one_condition_is_denied_and_told_which_without_the_allowed_values(string which, string expected)
    {
        var otherHash = new string('a', 64);
        var caller = which switch
        {
            "uid" => new JsonObject { ["Uids"] = Array(OwnUid + 4242) },
            "executable" => new JsonObject { ["Uids"] = Array(OwnUid), ["Executables"] = Array("/opt/exporter/bin/exporter") },
            _ => new JsonObject { ["Executables"] = Array(OwnExecutable), ["ExecutableSha256"] = Array(otherHash), ["SameUidCanImpersonate"] = true },
        };
        _config.Policy("nightly-export", Conditional("privileged", caller: caller));
        await using var proxy = await StartAsync();

        var (response, body) = await proxy.GetAsync("api", "/v1/x");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Empty(_upstream.LogEntries);
        var detail = JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString()!;
        Assert.Contains("policy nightly-export does not allow this request", detail);
        Assert.Contains(expected, detail);
        Assert.DoesNotContain((OwnUid + 4242).ToString(System.Globalization.CultureInfo.InvariantCulture), detail);
        Assert.DoesNotContain("/opt/exporter", detail);
        Assert.DoesNotContain(otherHash, detail);

        var decision = await LastDecisionAsync(proxy);
        Assert.Equal("deny", decision.GetProperty("decision").GetString());
        Assert.Equal("nightly-export", decision.GetProperty("policy").GetString());
        Assert.Equal(detail, decision.GetProperty("reason").GetString());
        Assert.Equal(JsonValueKind.Null, decision.GetProperty("credential").GetProperty("name").ValueKind);
        Assert.Equal(Environment.ProcessId, decision.GetProperty("caller").GetProperty("pid").GetInt32());
    }

    [Fact]
    public async Task Most_specific_wins_with_conditions_and_falls_back_to_the_general_policy_for_other_callers()
    {
        _config.Policy("everyone", Conditional("general"))
            .Policy("me-only", Conditional("privileged", caller: new JsonObject { ["Uids"] = Array(OwnUid) }))
            .Policy("admin-only", Conditional("privileged", pathPrefix: "/admin/", caller: new JsonObject { ["Uids"] = Array(OwnUid + 1) }));
        await using var proxy = await StartAsync();

        // Same destination: the policy with a caller condition outranks the one without.
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/v1/orders")).Response.StatusCode);
        Assert.Equal(_privilegedKey, LastKeySeen());

        // The longer path prefix is more specific, but its caller condition fails: the next most
        // specific policy whose conditions hold serves the request.
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/admin/users")).Response.StatusCode);
        Assert.Equal(_privilegedKey, LastKeySeen());
        Assert.Equal("me-only", (await LastDecisionAsync(proxy)).GetProperty("policy").GetString());
    }

    [Fact]
    public async Task Policies_for_disjoint_callers_on_one_destination_are_valid_and_each_caller_gets_its_own()
    {
        _config.Policy("for-me", Conditional("privileged", caller: new JsonObject { ["Uids"] = Array(OwnUid) }))
            .Policy("for-other", Conditional("general", caller: new JsonObject { ["Uids"] = Array(OwnUid + 1) }));
        await using var proxy = await StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/")).Response.StatusCode);
        Assert.Equal(_privilegedKey, LastKeySeen());
    }

    [Fact]
    public async Task Two_policies_that_can_match_the_same_caller_with_equal_specificity_are_a_config_error()
    {
        _config.Policy("a", Conditional("privileged", caller: new JsonObject { ["Uids"] = Array(1000, 1001) }))
            .Policy("b", Conditional("general", caller: new JsonObject { ["Uids"] = Array(1001) }));

        var ex = await Assert.ThrowsAsync<SecretlessProxy.Configuration.InvalidConfigurationException>(() => StartAsync());

        Assert.Contains(ex.Errors, e => e.Key == "SecretlessProxy:Policies:b" && e.Message.Contains("policy 'a'"));
    }

    [RootFact("/usr/bin/curl")]
    public async Task A_real_curl_running_as_another_uid_is_told_apart_from_one_running_as_this_uid()
    {
        var curl = new FileInfo("/usr/bin/curl").LinkTarget is { } target ? Path.GetFullPath(target, "/usr/bin") : "/usr/bin/curl";
        _config.Policy("nobody-curl", Conditional("privileged", caller: new JsonObject { ["Uids"] = Array(65534), ["Executables"] = Array(curl) }));
        await using var proxy = await StartAsync();
        var url = proxy.Listener("api", "/v1/x").ToString();

        var asNobody = await ExternalClient.RunAsync("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url]);
        var asRoot = await ExternalClient.RunAsync("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", url]);

        Assert.Equal("200", asNobody.Output.Trim());
        Assert.Equal(_privilegedKey, LastKeySeen());
        var rootBody = asRoot.Output.Trim();
        Assert.EndsWith("403", rootBody);
        Assert.Contains("does not allow the calling process's uid", Detail(rootBody[..rootBody.LastIndexOf('\n')]));
        Assert.Single(_upstream.LogEntries);
    }

    [Fact]
    public async Task When_allows_only_its_days_and_hours_in_its_time_zone_read_from_the_injected_clock()
    {
        // Monday 2026-11-23 00:30 UTC is Monday 01:30 in Berlin (CET, UTC+1).
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 23, 0, 30, 0, TimeSpan.Zero));
        _config.Policy("nightly", Conditional("privileged", when: new JsonObject
        {
            ["Days"] = Array("Mon", "Tue", "Wed", "Thu", "Fri"),
            ["Between"] = "01:00-03:00",
            ["TimeZone"] = "Europe/Berlin",
        }));
        await using var proxy = await StartAsync(time);

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/")).Response.StatusCode);

        time.Advance(TimeSpan.FromHours(2)); // 03:30 Berlin: after the window.
        var (late, lateBody) = await proxy.GetAsync("api", "/");
        Assert.Equal(HttpStatusCode.Forbidden, late.StatusCode);
        Assert.Contains("its When condition does not allow this time of day", Detail(lateBody));

        time.SetUtcNow(new DateTimeOffset(2026, 11, 28, 0, 30, 0, TimeSpan.Zero)); // Saturday 01:30 Berlin.
        var (saturday, saturdayBody) = await proxy.GetAsync("api", "/");
        Assert.Equal(HttpStatusCode.Forbidden, saturday.StatusCode);
        Assert.Contains("its When condition does not allow today", Detail(saturdayBody));
        Assert.Single(_upstream.LogEntries);
    }

    [Fact]
    public async Task A_window_across_midnight_belongs_to_the_day_it_starts()
    {
        // Friday 2026-11-27 01:00 UTC: the after-midnight part of Thursday's window.
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 27, 1, 0, 0, TimeSpan.Zero));
        _config.Policy("friday-night", Conditional("privileged", when: new JsonObject { ["Days"] = Array("Fri"), ["Between"] = "22:00-02:00" }));
        await using var proxy = await StartAsync(time);

        Assert.Equal(HttpStatusCode.Forbidden, (await proxy.GetAsync("api", "/")).Response.StatusCode);
        time.SetUtcNow(new DateTimeOffset(2026, 11, 27, 23, 0, 0, TimeSpan.Zero)); // Friday 23:00.
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/")).Response.StatusCode);
        time.Advance(TimeSpan.FromHours(2)); // Saturday 01:00: still Friday's window.
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/")).Response.StatusCode);
        time.Advance(TimeSpan.FromHours(1)); // Saturday 02:00: the window has ended.
        Assert.Equal(HttpStatusCode.Forbidden, (await proxy.GetAsync("api", "/")).Response.StatusCode);
    }

    [Fact]
    public async Task Labels_select_the_policy_for_this_environment_and_an_environment_variable_style_override_switches_it()
    {
        _config.Set("Labels", new JsonObject { ["env"] = "staging", ["cluster"] = "eu-1" })
            .Policy("prod", Conditional("privileged", labels: new JsonObject { ["env"] = "prod" }));
        await using (var proxy = await StartAsync())
        {
            var (response, body) = await proxy.GetAsync("api", "/");
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains("its label 'env' differs from this proxy's", Detail(body));
            Assert.DoesNotContain("staging", body);
        }

        // SecretlessProxy__Labels__env=prod in a pod's environment: the same file now serves prod.
        var path = _config.Write();
        await using (var proxy = await ProxyHarnessWithOverrides(path, new Dictionary<string, string?> { ["SecretlessProxy:Labels:env"] = "prod" }))
        {
            Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("api", "/")).Response.StatusCode);
            Assert.Equal(_privilegedKey, LastKeySeen());
        }
    }

    [Fact]
    public async Task A_policy_for_another_environment_counts_as_absent_on_a_pass_through_listener()
    {
        _config.Section["Listeners"]!["api"]!["Unmatched"] = "PassThrough";
        _config.Set("Labels", new JsonObject { ["env"] = "staging" })
            .Policy("prod", Conditional("privileged", labels: new JsonObject { ["env"] = "prod" }));
        await using var proxy = await StartAsync();

        var (response, _) = await proxy.GetAsync("api", "/");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(LastKeySeen());
        Assert.Equal("passthrough", (await LastDecisionAsync(proxy)).GetProperty("decision").GetString());
    }

    [Fact]
    public void A_caller_known_only_by_its_uid_does_not_satisfy_a_caller_condition()
    {
        // The proxy sees the socket's uid but not the process (no shared pid namespace): any
        // process of that uid, in any container, could be the caller.
        var condition = new SecretlessProxy.Policy.CallerCondition([OwnUid], null, null);
        var uidOnly = new SecretlessProxy.Core.Caller(isKnown: true, uid: OwnUid, pid: null, executable: null, executableSha256: null, containerId: null, cgroup: null);
        var resolved = new SecretlessProxy.Core.Caller(isKnown: true, uid: OwnUid, pid: Environment.ProcessId, executable: OwnExecutable, executableSha256: null, containerId: null, cgroup: null);

        Assert.Equal(SecretlessProxy.Policy.ConditionFailure.CallerUnknown, condition.Evaluate(uidOnly));
        Assert.Equal(SecretlessProxy.Policy.ConditionFailure.CallerUnknown, condition.Evaluate(SecretlessProxy.Core.Caller.Unknown));
        Assert.Equal(SecretlessProxy.Policy.ConditionFailure.None, condition.Evaluate(resolved));
    }

    private static async Task<Hosted> ProxyHarnessWithOverrides(string path, IReadOnlyDictionary<string, string?> overrides)
    {
        var app = await SecretlessProxy.Hosting.ProxyApp.StartAsync(path, new SecretlessProxy.Hosting.ProxyAppOptions { ConsoleLogging = false, ConfigOverrides = overrides });
        return new Hosted(app);
    }

    private sealed class Hosted(SecretlessProxy.Hosting.ProxyApp app) : IAsyncDisposable
    {
        private readonly HttpClient _client = new(new SocketsHttpHandler { UseProxy = false });

        public async Task<(HttpResponseMessage Response, string Body)> GetAsync(string listener, string path)
        {
            var response = await _client.GetAsync(new Uri(app.GetListenerUri(listener), path));
            return (response, await response.Content.ReadAsStringAsync());
        }

        public async ValueTask DisposeAsync()
        {
            _client.Dispose();
            await app.DisposeAsync();
        }
    }

    public void Dispose()
    {
        _upstream.Stop();
        _config.Dispose();
    }
}
