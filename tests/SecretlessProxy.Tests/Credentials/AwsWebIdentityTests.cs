using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;
using SecretlessProxy.Tests.Identity;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// The <c>AwsWebIdentity</c> source against a WireMock STS answering the real XML shapes: the
/// workload token is the web identity (no AWS secret anywhere before the call), the temporary keys
/// are the credential, cached until shortly before their Expiration and refreshed ahead, and every
/// STS failure becomes a safe, specific reason. The source is compiled from a config file, as the
/// proxy does; expiry is driven by the fake clock.
/// </summary>
public sealed class AwsWebIdentityTests : IDisposable
{
    private const string RoleArn = "arn:aws:iam::123456789012:role/exporter";
    private const string Credential = "aws";

    private readonly ITestOutputHelper _output;
    private readonly TokenFileIdentityHarness _identity = new();
    private readonly TokenFileIdentityHarness.TestKey _key = TokenFileIdentityHarness.RsaKey();
    private readonly FakeSts _sts;
    private readonly TestConfig _config = new();
    private readonly HttpMessageInvoker _http = new(new SocketsHttpHandler { UseProxy = false });
    private readonly WorkloadIdentityAccessor _accessor = new();
    private readonly List<string> _tokens = [];

    public AwsWebIdentityTests(ITestOutputHelper output)
    {
        _output = output;
        _sts = FakeSts.Start(_identity.Time);
        _accessor.Identity = _identity.Start(issuer: null, audience: null, jwksUrl: null);
        _config.RouteListener("api", "http://127.0.0.1:9")
            .Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _identity.TokenPath });
    }

    private JsonObject Aws(Action<JsonObject>? change = null)
    {
        var definition = new JsonObject
        {
            ["Source"] = "AwsWebIdentity",
            ["RoleArn"] = RoleArn,
            ["Region"] = "eu-west-1",
            ["StsUrl"] = _sts.Url,
            ["AllowLoopbackSquatting"] = true,
            // Retries without delay: the fake clock does not advance by itself.
            ["RetryDelay"] = "00:00:00",
            // Refresh exactly at RefreshAt, as these tests step the clock to it (spreading: RefreshSpreadingTests).
            ["RefreshJitter"] = 0,
            ["SpreadFirstRefresh"] = false,
        };
        change?.Invoke(definition);
        return definition;
    }

    private string WriteToken(string subject = "system:serviceaccount:jobs:exporter", TimeSpan? lifetime = null)
    {
        var claims = _identity.Claims("https://kubernetes.default.svc", "sts.amazonaws.com", subject);
        if (lifetime is { } l)
        {
            claims["exp"] = _identity.Time.GetUtcNow().Add(l).ToUnixTimeSeconds();
        }

        var token = _identity.Sign(_key, claims);
        _identity.WriteToken(token);
        _tokens.Add(token);
        return token;
    }

    private Task<ConfigLoadResult> LoadAsync() =>
        new ConfigLoader(_identity.Time, _http, _accessor).LoadAsync(_config.Write(), includeEnvironment: false);

    private async Task<CredentialDefinition> CompileAsync(JsonObject credential)
    {
        _config.Credential(Credential, credential);
        var result = await LoadAsync();
        Assert.True(result.IsValid, string.Join(Environment.NewLine, result.Errors));
        var definition = Assert.Single(result.Snapshot!.Credentials);
        Assert.IsType<AwsWebIdentityCredentialSource>(definition.Source);
        return definition;
    }

    private async Task<IReadOnlyList<ConfigError>> ErrorsAsync(JsonObject credential)
    {
        _config.Credential(Credential, credential);
        var result = await LoadAsync();
        Assert.False(result.IsValid);
        return result.Errors;
    }

    /// <summary>Neither the workload token nor any issued secret is in <paramref name="text"/>.</summary>
    private void AssertSafe(string text)
    {
        foreach (var secret in _tokens.Concat(_sts.Secrets))
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
        }

        foreach (var token in _tokens)
        {
            Assert.DoesNotContain(token.Split('.')[2], text, StringComparison.Ordinal);
        }
    }

    private async Task<CredentialFetchException> FetchFailsAsync(CredentialDefinition definition)
    {
        var ex = await Assert.ThrowsAsync<CredentialFetchException>(() => definition.Source.FetchAsync(CancellationToken.None));
        _output.WriteLine("reason: " + ex.Message);
        AssertSafe(ex.Message);
        Assert.Null(ex.InnerException);
        return ex;
    }

    [Fact]
    public async Task The_workload_token_is_the_web_identity_and_the_temporary_keys_are_the_credential()
    {
        var token = WriteToken();
        var definition = await CompileAsync(Aws(d => d["Duration"] = "02:00:00"));
        _sts.Succeed(expiresIn: 7200);
        var now = _identity.Time.GetUtcNow();

        var credential = await definition.Source.FetchAsync(CancellationToken.None);

        Assert.Equal("AwsWebIdentity", definition.Source.Kind);
        var call = Assert.Single(_sts.Requests);
        Assert.Equal("POST", call.Method);
        Assert.Equal("/", call.Path);
        Assert.StartsWith("application/x-www-form-urlencoded", call.Headers["Content-Type"], StringComparison.OrdinalIgnoreCase);
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["Action"] = "AssumeRoleWithWebIdentity",
                ["Version"] = "2011-06-15",
                ["RoleArn"] = RoleArn,
                ["RoleSessionName"] = "secretless-proxy",
                ["WebIdentityToken"] = token,
                ["DurationSeconds"] = "7200",
            },
            call.Form.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary());

        // Anonymous: the call is not signed and carries no AWS credential of any kind.
        Assert.False(call.Headers.ContainsKey("Authorization"));
        Assert.False(call.Headers.ContainsKey("X-Amz-Security-Token"));
        Assert.DoesNotContain("AWS4-HMAC-SHA256", string.Join("\n", call.Headers.Values), StringComparison.Ordinal);

        var issued = Assert.Single(_sts.IssuedKeys);
        Assert.DoesNotContain(issued.SecretAccessKey, credential.Secret);
        Assert.Null(credential.Username);
        Assert.Equal(now, credential.ObtainedAt);
        Assert.Equal(issued.Expiration, credential.ExpiresAt);
        Assert.NotNull(credential.SigningKeys);
        Assert.Equal(issued.AccessKeyId, credential.SigningKeys.AccessKeyId);
        Assert.Equal(issued.SecretAccessKey, credential.SigningKeys.SecretAccessKey);
        Assert.Equal(issued.SessionToken, credential.SigningKeys.SessionToken);
        AssertSafe(credential.ToString() + credential.SigningKeys.ToString());
    }

    [Fact]
    public async Task A_configured_session_name_is_sent_and_the_duration_defaults_to_an_hour()
    {
        WriteToken();
        var definition = await CompileAsync(Aws(d => d["RoleSessionName"] = "orders@eu-west-1.prod"));

        await definition.Source.FetchAsync(CancellationToken.None);

        var form = Assert.Single(_sts.Requests).Form;
        Assert.Equal("orders@eu-west-1.prod", form["RoleSessionName"]);
        Assert.Equal("3600", form["DurationSeconds"]);
    }

    [Fact]
    public async Task StsUrl_alone_is_enough_and_the_region_picks_the_regional_endpoint_otherwise()
    {
        WriteToken();
        var custom = await CompileAsync(Aws(d => d.Remove("Region")));
        await custom.Source.FetchAsync(CancellationToken.None);
        Assert.Single(_sts.Requests);
        Assert.Equal(new Uri(_sts.Url), ((AwsWebIdentityCredentialSource)custom.Source).ResolveEndpoint());

        var regional = await CompileAsync(Aws(d =>
        {
            d.Remove("StsUrl");
            d.Remove("AllowLoopbackSquatting");
        }));
        Assert.Equal(new Uri("https://sts.eu-west-1.amazonaws.com"), ((AwsWebIdentityCredentialSource)regional.Source).ResolveEndpoint());

        var china = await CompileAsync(Aws(d =>
        {
            d.Remove("StsUrl");
            d.Remove("AllowLoopbackSquatting");
            d["Region"] = "cn-north-1";
            d["RoleArn"] = "arn:aws-cn:iam::123456789012:role/exporter";
        }));
        Assert.Equal(new Uri("https://sts.cn-north-1.amazonaws.com.cn"), ((AwsWebIdentityCredentialSource)china.Source).ResolveEndpoint());
    }

    [Fact]
    public async Task The_keys_are_cached_refreshed_ahead_of_Expiration_and_never_handed_out_past_it()
    {
        WriteToken(lifetime: TimeSpan.FromHours(4));
        var definition = await CompileAsync(Aws());
        _sts.Succeed(expiresIn: 3600);
        using var cache = new SecretlessProxy.Credentials.CredentialCache([definition], _identity.Time, NullLoggerFactory.Instance);

        var first = await cache.GetAsync(Credential, CancellationToken.None);
        Assert.Equal(CacheOutcome.Fetch, first.Outcome);
        Assert.Equal(_sts.IssuedKeys[0].AccessKeyId, first.Credential.SigningKeys!.AccessKeyId);

        // Before 80% of the lifetime: served from cache, STS not asked again.
        _identity.Advance(TimeSpan.FromMinutes(47));
        var cached = await cache.GetAsync(Credential, CancellationToken.None);
        Assert.Equal(CacheOutcome.Hit, cached.Outcome);
        Assert.Same(first.Credential, cached.Credential);
        Assert.Single(_sts.Requests);

        // Past 80%: the valid keys keep serving while one background call gets new ones.
        _identity.Advance(TimeSpan.FromMinutes(2));
        var during = await cache.GetAsync(Credential, CancellationToken.None);
        Assert.Equal(CacheOutcome.RefreshAhead, during.Outcome);
        Assert.Same(first.Credential, during.Credential);
        await WaitUntilAsync(async () => (await cache.GetAsync(Credential, CancellationToken.None)).Credential.SigningKeys!.AccessKeyId == _sts.IssuedKeys.ElementAtOrDefault(1)?.AccessKeyId);
        Assert.Equal(2, _sts.Requests.Count);

        // STS fails from now on; just inside the 5 s expiry skew of the second keys they are not
        // handed out any more, and the failure says why.
        _sts.Fail(400, FakeSts.ErrorXml("InvalidIdentityToken", "No OpenIDConnect provider found in your account"));
        _identity.Advance(_sts.IssuedKeys[1].Expiration - _identity.Time.GetUtcNow() - TimeSpan.FromSeconds(4));
        var ex = await Assert.ThrowsAsync<CredentialUnavailableException>(async () => await cache.GetAsync(Credential, CancellationToken.None));
        Assert.Contains("STS answered 400 (InvalidIdentityToken)", ex.Message);
        Assert.DoesNotContain("OpenIDConnect", ex.Message);
        AssertSafe(ex.Message);
    }

    [Fact]
    public async Task A_rotated_workload_token_is_presented_on_the_next_fetch()
    {
        var first = WriteToken();
        var definition = await CompileAsync(Aws());
        await definition.Source.FetchAsync(CancellationToken.None);

        // The kubelet rotates the projected token (a longer subject keeps the file's length different).
        var second = WriteToken("system:serviceaccount:jobs:exporter-rotated");
        _identity.AdvancePastStatInterval();
        await definition.Source.FetchAsync(CancellationToken.None);

        Assert.Equal([first, second], _sts.Requests.Select(r => r.Form["WebIdentityToken"]).ToArray());
    }

    [Fact]
    public async Task Without_a_valid_workload_identity_STS_is_not_called()
    {
        var definition = await CompileAsync(Aws());

        var ex = await FetchFailsAsync(definition);

        Assert.False(ex.IsTransient);
        Assert.StartsWith("no valid workload identity to present to STS: ", ex.Message, StringComparison.Ordinal);
        Assert.Empty(_sts.Requests);
    }

    [Theory]
    [InlineData(400, "InvalidIdentityToken", false, "STS answered 400 (InvalidIdentityToken): STS rejected the workload token")]
    [InlineData(400, "ExpiredTokenException", false, "STS answered 400 (ExpiredTokenException): the workload token had expired")]
    [InlineData(403, "AccessDenied", false, "STS answered 403 (AccessDenied): the role's trust policy does not allow this workload")]
    [InlineData(400, "ValidationError", false, "STS answered 400 (ValidationError)")]
    [InlineData(400, "IDPCommunicationError", true, "STS answered 400 (IDPCommunicationError): STS could not reach the identity provider")]
    [InlineData(400, "Throttling", true, "STS answered 400 (Throttling)")]
    [InlineData(503, "ServiceUnavailable", true, "STS answered 503 (ServiceUnavailable)")]
    [InlineData(500, "InternalFailure", true, "STS answered 500 (InternalFailure)")]
    [InlineData(400, "TokenEchoedAsCode", false, "STS answered 400")]
    public async Task An_STS_error_names_the_code_never_the_message_and_only_transient_ones_are_retried(int status, string code, bool transient, string expected)
    {
        var token = WriteToken();
        var definition = await CompileAsync(Aws());
        // A message (or an unknown code) that repeats the submitted token must not reach the reason.
        _sts.Fail(status, FakeSts.ErrorXml(code == "TokenEchoedAsCode" ? token : code, "Invalid token " + token, status >= 500 ? "Receiver" : "Sender"));

        var ex = await FetchFailsAsync(definition);

        Assert.StartsWith(expected, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Invalid token", ex.Message, StringComparison.Ordinal);
        Assert.Equal(transient, ex.IsTransient);
        // RetryAttempts defaults to 2: three calls for a transient failure, one otherwise.
        Assert.Equal(transient ? 3 : 1, _sts.Requests.Count);
    }

    [Fact]
    public async Task A_transient_STS_failure_is_retried_within_the_fetch_and_the_retry_can_succeed()
    {
        WriteToken();
        var definition = await CompileAsync(Aws());
        _sts.FailFirst(1, 503, FakeSts.ErrorXml("ServiceUnavailable", "try again", "Receiver"));

        var credential = await definition.Source.FetchAsync(CancellationToken.None);

        Assert.Equal(2, _sts.Requests.Count);
        Assert.Equal(Assert.Single(_sts.IssuedKeys).AccessKeyId, credential.SigningKeys!.AccessKeyId);
    }

    [Fact]
    public async Task STS_down_is_transient_and_names_the_transport_error()
    {
        WriteToken();
        var definition = await CompileAsync(Aws(d => d["RetryAttempts"] = 1));
        _sts.GoDown();

        var ex = await FetchFailsAsync(definition);

        Assert.True(ex.IsTransient);
        Assert.Equal("STS unreachable (ConnectionError)", ex.Message);
    }

    [Theory]
    [InlineData(200, "text/html", "<html><body>Gateway says hello</body></html>", "STS answer has no complete Credentials")]
    [InlineData(200, "text/xml", "<AssumeRoleWithWebIdentityResponse><Gateway", "STS answered something that is not well-formed XML")]
    [InlineData(502, "text/html", "<html><body>Bad gateway</body></html>", "STS answered 502")]
    public async Task An_answer_that_is_not_STS_XML_is_a_transient_failure_without_its_body(int status, string contentType, string body, string expected)
    {
        WriteToken();
        var definition = await CompileAsync(Aws(d => d["RetryAttempts"] = 0));
        _sts.Fail(status, body, contentType);

        var ex = await FetchFailsAsync(definition);

        Assert.True(ex.IsTransient);
        Assert.StartsWith(expected, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hello", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("gateway", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task An_answer_without_credentials_is_not_a_credential()
    {
        WriteToken();
        var definition = await CompileAsync(Aws(d => d["RetryAttempts"] = 0));
        _sts.Fail(200, "<AssumeRoleWithWebIdentityResponse xmlns=\"" + FakeSts.Namespace + "\"><AssumeRoleWithWebIdentityResult><Provider>x</Provider></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>");

        var ex = await FetchFailsAsync(definition);

        Assert.True(ex.IsTransient);
        Assert.StartsWith("STS answer has no complete Credentials", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_oversized_answer_is_not_read_past_256_KiB()
    {
        WriteToken();
        var definition = await CompileAsync(Aws(d => d["RetryAttempts"] = 0));
        _sts.Fail(200, "<AssumeRoleWithWebIdentityResponse>" + new string('x', 300 * 1024) + "</AssumeRoleWithWebIdentityResponse>");

        var ex = await FetchFailsAsync(definition);

        Assert.True(ex.IsTransient);
        Assert.Equal("STS answer is larger than 256 KiB", ex.Message);
    }

    [Fact]
    public async Task A_slow_STS_times_out_after_the_configured_wall_clock_limit()
    {
        WriteToken();
        var definition = await CompileAsync(Aws(d =>
        {
            d["Timeout"] = "00:00:01";
            d["RetryAttempts"] = 0;
        }));
        _sts.Succeed(delay: TimeSpan.FromSeconds(5));
        var started = System.Diagnostics.Stopwatch.StartNew();

        var ex = await FetchFailsAsync(definition);

        Assert.True(started.Elapsed < TimeSpan.FromSeconds(4), "the SDK must not wait past our timeout: " + started.Elapsed);
        Assert.True(ex.IsTransient);
        Assert.Equal("STS did not answer within 1 s", ex.Message);
    }

    [Fact]
    public async Task Cancellation_by_the_caller_is_not_reported_as_a_timeout()
    {
        WriteToken();
        var definition = await CompileAsync(Aws(d => d["RetryAttempts"] = 0));
        _sts.Succeed(delay: TimeSpan.FromSeconds(5));
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => definition.Source.FetchAsync(cancel.Token));
    }

    [Theory]
    [InlineData("RoleArn", null, "RoleArn", "is required for an AwsWebIdentity credential")]
    [InlineData("RoleArn", "arn:aws:iam::12345:role/exporter", "RoleArn", "is not an IAM role ARN")]
    [InlineData("RoleArn", "arn:aws:iam::123456789012:user/exporter", "RoleArn", "is not an IAM role ARN")]
    [InlineData("RoleArn", "arn:aws:s3:::bucket", "RoleArn", "is not an IAM role ARN")]
    [InlineData("RoleSessionName", "x", "RoleSessionName", "is not a role session name: 2 to 64")]
    [InlineData("RoleSessionName", "has space", "RoleSessionName", "is not a role session name")]
    [InlineData("Region", null, "Region", "is required for an AwsWebIdentity credential (the STS region, e.g. eu-west-1), unless StsUrl is given")]
    [InlineData("Region", "eu-west", "Region", "is not an AWS region name")]
    [InlineData("StsUrl", "ftp://sts.example.com/", "StsUrl", "is not an absolute http or https URL")]
    [InlineData("StsUrl", "https://sts.example.com/?a=b", "StsUrl", "without user info, query or fragment")]
    [InlineData("Duration", "00:10:00", "Duration", "must be between 00:15:00 and 12:00:00")]
    [InlineData("Duration", "13:00:00", "Duration", "must be between 00:15:00 and 12:00:00")]
    [InlineData("Duration", "01:00:00.5", "Duration", "must be whole seconds")]
    [InlineData("Timeout", "00:00:00", "Timeout", "must be a positive duration")]
    [InlineData("RetryAttempts", "11", "RetryAttempts", "must be between 0 and 10")]
    [InlineData("RetryDelay", "-00:00:01", "RetryDelay", "must not be negative")]
    [InlineData("Username", "deploy", "Username", "does not apply to an AwsWebIdentity credential")]
    public async Task Config_errors_are_named_by_key(string field, string? value, string errorField, string message)
    {
        var errors = await ErrorsAsync(Aws(d =>
        {
            if (field == "Region" && value is null)
            {
                d.Remove("StsUrl");
                d.Remove("AllowLoopbackSquatting");
            }

            if (value is null)
            {
                d.Remove(field);
            }
            else
            {
                d[field] = field == "RetryAttempts" ? JsonValue.Create(int.Parse(value, System.Globalization.CultureInfo.InvariantCulture)) : value;
            }
        }));

        var key = "SecretlessProxy:Credentials:" + Credential + ":" + errorField;
        Assert.Contains(errors, e => e.Key == key && e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_StsUrl_with_user_info_is_rejected_without_repeating_the_password()
    {
        var errors = await ErrorsAsync(Aws(d => d["StsUrl"] = "https://admin:hunter2@sts.example.com/"));

        var error = Assert.Single(errors, e => e.Key == "SecretlessProxy:Credentials:aws:StsUrl");
        Assert.Contains("'https://***@sts.example.com/' is not an absolute http or https URL without user info", error.Message);
        Assert.DoesNotContain("hunter2", string.Join("\n", errors));
    }

    [Fact]
    public async Task Every_problem_is_reported_at_once()
    {
        var errors = await ErrorsAsync(new JsonObject { ["Source"] = "AwsWebIdentity", ["RoleSessionName"] = "a", ["Duration"] = "20:00:00" });

        var keys = errors.Select(e => e.Key).ToHashSet();
        Assert.Contains("SecretlessProxy:Credentials:aws:RoleArn", keys);
        Assert.Contains("SecretlessProxy:Credentials:aws:RoleSessionName", keys);
        Assert.Contains("SecretlessProxy:Credentials:aws:Region", keys);
        Assert.Contains("SecretlessProxy:Credentials:aws:Duration", keys);
    }

    [Fact]
    public async Task The_source_needs_a_configured_workload_identity()
    {
        _config.Section.Remove("Identity");

        var errors = await ErrorsAsync(Aws());

        Assert.Contains(errors, e => e.Key == "SecretlessProxy:Credentials:aws:Source" && e.Message == "AwsWebIdentity needs the workload identity: configure SecretlessProxy:Identity");
    }

    [Theory]
    [InlineData("Header")]
    [InlineData("Query")]
    public async Task Temporary_AWS_keys_can_only_sign_requests_never_be_injected_as_a_value(string injection)
    {
        var inject = injection == "Header"
            ? new JsonObject { ["Header"] = "Authorization", ["Format"] = "Bearer {token}" }
            : new JsonObject { ["Query"] = "key" };
        _config.Policy("s3", new JsonObject { ["Match"] = TestConfig.Match(["127.0.0.1"]), ["Credential"] = Credential, ["Inject"] = inject });

        var errors = await ErrorsAsync(Aws());

        Assert.Contains(errors, e => e.Key == "SecretlessProxy:Policies:s3:Inject" && e.Message == "an AwsWebIdentity credential can only sign requests: use AwsSigV4");
    }

    [Fact]
    public async Task Through_the_proxy_the_keys_sign_the_request_and_a_failing_STS_gives_503_without_an_upstream_call()
    {
        using var upstream = WireMockFactory.Start();
        upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        _config.RouteListener("api", upstream.LoopbackUrl())
            .Credential(Credential, Aws())
            .Policy("s3", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"]),
                ["Credential"] = Credential,
                ["Inject"] = new JsonObject { ["AwsSigV4"] = new JsonObject { ["Service"] = "s3", ["Region"] = "eu-west-1" } },
            });
        var token = WriteToken();

        var proxy = await ProxyHarness.StartAsync(_config.Write(), _identity.Time);
        await using (proxy)
        {
            proxy.NeverEmit(token);
            proxy.NeverEmit(() => _sts.Secrets);

            var (ok, _) = await proxy.GetAsync("api", "/bucket/key");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            var keys = Assert.Single(_sts.IssuedKeys);
            Assert.Equal(token, Assert.Single(_sts.Requests).Form["WebIdentityToken"]);
            var headers = Assert.Single(upstream.LogEntries).RequestMessage.Headers!;
            Assert.StartsWith("AWS4-HMAC-SHA256 Credential=" + keys.AccessKeyId + "/", Header(headers, "Authorization"), StringComparison.Ordinal);
            Assert.Equal(keys.SessionToken, Header(headers, "X-Amz-Security-Token"));

            // The keys expire; STS now rejects the token: the app gets 503 naming the STS error, the upstream nothing.
            _sts.Fail(400, FakeSts.ErrorXml("InvalidIdentityToken", "Incorrect token audience"));
            _identity.Advance(TimeSpan.FromSeconds(3596));
            var (failed, body) = await proxy.GetAsync("api", "/bucket/key");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
            var problem = JsonDocument.Parse(body).RootElement;
            Assert.Equal("urn:secretless-proxy:problem:credential-unavailable", problem.GetProperty("type").GetString());
            Assert.Contains("STS answered 400 (InvalidIdentityToken)", problem.GetProperty("detail").GetString());
            Assert.Single(upstream.LogEntries);
        }
    }

    [Fact]
    public async Task AWS_environment_variables_and_shared_config_files_change_nothing()
    {
        // A child proxy whose environment and ~/.aws point everywhere else: another endpoint, more
        // SDK retries, FIPS, static keys. None of it may apply; only the proxy's config does.
        using var sts = FakeSts.Start();
        using var upstream = WireMockFactory.Start();
        upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("ok"));
        var home = Directory.CreateDirectory(Path.Combine(_config.Directory, "home", ".aws")).Parent!.FullName;
        File.WriteAllText(Path.Combine(home, ".aws", "config"), "[default]\nregion = us-west-2\nendpoint_url = http://127.0.0.1:1/\nmax_attempts = 7\nretry_mode = adaptive\nuse_fips_endpoint = true\n[services default]\nsts =\n  endpoint_url = http://127.0.0.1:1/\n");
        File.WriteAllText(Path.Combine(home, ".aws", "credentials"), "[default]\naws_access_key_id = AKIAFROMPROFILE00000\naws_secret_access_key = from-profile\n");
        var environment = new Dictionary<string, string>
        {
            ["HOME"] = home,
            ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1/",
            ["AWS_ENDPOINT_URL_STS"] = "http://127.0.0.1:1/",
            ["AWS_MAX_ATTEMPTS"] = "7",
            ["AWS_RETRY_MODE"] = "adaptive",
            ["AWS_REGION"] = "us-west-2",
            ["AWS_USE_FIPS_ENDPOINT"] = "true",
            ["AWS_ACCESS_KEY_ID"] = "AKIAFROMENVIRONMENT0",
            ["AWS_SECRET_ACCESS_KEY"] = "from-environment",
            ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:1/",
        };

        // The child runs on the real clock, so its token is valid now.
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var claims = new JsonObject { ["iss"] = "https://kubernetes.default.svc", ["sub"] = "system:serviceaccount:jobs:exporter", ["aud"] = "sts.amazonaws.com", ["iat"] = now, ["nbf"] = now, ["exp"] = now + 3600 };
        var token = _identity.Sign(_key, claims);
        var tokenPath = _config.SecretFile("child-token", token);
        var port = WireMockFactory.FreePort();
        _config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = tokenPath });
        _config.Section["Listeners"]!["api"] = new JsonObject { ["Mode"] = "Route", ["Url"] = "http://127.0.0.1:" + port, ["Upstream"] = upstream.LoopbackUrl() };
        JsonObject Signed(string prefix, string credential) => new()
        {
            ["Match"] = TestConfig.Match(["127.0.0.1"], prefix),
            ["Credential"] = credential,
            ["Inject"] = new JsonObject { ["AwsSigV4"] = new JsonObject { ["Service"] = "s3", ["Region"] = "eu-west-1" } },
        };
        _config.Credential(Credential, Aws(d => d["StsUrl"] = sts.Url))
            .Credential("throttled", Aws(d =>
            {
                d["StsUrl"] = _sts.Url;
                d["RetryAttempts"] = 0;
            }))
            .Policy("s3", Signed("/ok/", Credential))
            .Policy("throttled", Signed("/throttled/", "throttled"));
        _sts.Fail(400, FakeSts.ErrorXml("Throttling", "Rate exceeded", "Sender"));

        var process = ProxyProcess.Start(["run", "--config", _config.Write()], environment, "AWS_", "SecretlessProxy");
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) => output.Enqueue(e.Data ?? string.Empty);
        process.ErrorDataReceived += (_, e) => output.Enqueue(e.Data ?? string.Empty);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false });
            var listener = "http://127.0.0.1:" + port;
            HttpResponseMessage? ok = null;
            for (var i = 0; i < 300 && ok is null; i++)
            {
                try
                {
                    ok = await client.GetAsync(listener + "/ok/key");
                }
                catch (HttpRequestException)
                {
                    if (process.HasExited)
                    {
                        await process.WaitForExitAsync();
                        Assert.Fail("the proxy exited: " + string.Join("\n", output));
                    }

                    await Task.Delay(50);
                }
            }

            Assert.NotNull(ok);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            var call = Assert.Single(sts.Requests);
            Assert.False(call.Headers.ContainsKey("Authorization"));
            var keys = Assert.Single(sts.IssuedKeys);
            var authorization = Header(Assert.Single(upstream.LogEntries).RequestMessage.Headers!, "Authorization");
            Assert.StartsWith("AWS4-HMAC-SHA256 Credential=" + keys.AccessKeyId + "/", authorization, StringComparison.Ordinal);

            // Throttling is transient, but with RetryAttempts 0 STS is asked once: the SDK adds no retries of its own.
            var throttled = await client.GetAsync(listener + "/throttled/key");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, throttled.StatusCode);
            Assert.Contains("STS answered 400 (Throttling)", await throttled.Content.ReadAsStringAsync());
            Assert.Single(_sts.Requests);
            Assert.Single(upstream.LogEntries);
            Assert.DoesNotContain(output, line => line.Contains(token, StringComparison.Ordinal) || line.Contains(keys.SecretAccessKey, StringComparison.Ordinal) || line.Contains(keys.SessionToken, StringComparison.Ordinal));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            process.Dispose();
        }
    }

    private static string? Header(IDictionary<string, WireMock.Types.WireMockList<string>> headers, string name) =>
        headers.FirstOrDefault(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value?.Single();

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 10 s");
            await Task.Delay(20);
        }
    }

    public void Dispose()
    {
        _sts.Dispose();
        _http.Dispose();
        _config.Dispose();
        _identity.Dispose();
    }
}
