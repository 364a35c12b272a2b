using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;
using SecretlessProxy.Tests.Identity;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// The <c>AwsRdsAuthToken</c> source: the token it makes from the keys an <c>AwsWebIdentity</c>
/// credential obtained (WireMock STS) is byte for byte the one botocore's <c>generate_db_auth_token</c>
/// computes at the same pinned clock; its lifetime is 15 minutes bounded by the keys'; and its
/// configuration is checked by key, by what the signing credential yields, and against the
/// database listeners that log in with it (verified TLS, the endpoint it is signed for).
/// </summary>
public sealed class AwsRdsAuthTokenTests : IDisposable
{
    private const string RoleArn = "arn:aws:iam::123456789012:role/orders-db";
    private const string Host = "orders.cluster-abc123.eu-west-1.rds.amazonaws.com";
    private const int Port = 5432;
    private const string User = "orders_app";

    private readonly TokenFileIdentityHarness _identity = new();
    private readonly TokenFileIdentityHarness.TestKey _key = TokenFileIdentityHarness.RsaKey();
    private readonly FakeSts _sts;
    private readonly TestConfig _config = new();
    private readonly HttpMessageInvoker _http = new(new SocketsHttpHandler { UseProxy = false });
    private readonly WorkloadIdentityAccessor _accessor = new();

    public AwsRdsAuthTokenTests()
    {
        _sts = FakeSts.Start(_identity.Time);
        _accessor.Identity = _identity.Start(issuer: null, audience: null, jwksUrl: null);
        _config.RouteListener("api", "http://127.0.0.1:9")
            .Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _identity.TokenPath })
            .Credential("aws", new JsonObject
            {
                ["Source"] = "AwsWebIdentity",
                ["RoleArn"] = RoleArn,
                ["Region"] = "eu-west-1",
                ["StsUrl"] = _sts.Url,
                ["AllowLoopbackSquatting"] = true,
                ["RetryDelay"] = "00:00:00",
            });
        _identity.WriteToken(_identity.Sign(_key, _identity.Claims("https://kubernetes.default.svc", "sts.amazonaws.com", "system:serviceaccount:orders:api")));
    }

    private static JsonObject Rds(Action<JsonObject>? change = null)
    {
        var definition = new JsonObject
        {
            ["Source"] = "AwsRdsAuthToken",
            ["SigningCredential"] = "aws",
            ["Endpoint"] = Host + ":" + Port,
            ["Username"] = User,
        };
        change?.Invoke(definition);
        return definition;
    }

    private Task<ConfigLoadResult> LoadAsync() =>
        new ConfigLoader(_identity.Time, _http, _accessor).LoadAsync(_config.Write(), includeEnvironment: false);

    private async Task<IReadOnlyList<ConfigError>> ErrorsAsync()
    {
        var result = await LoadAsync();
        Assert.False(result.IsValid);
        return result.Errors;
    }

    /// <summary>The compiled snapshot's credentials in a cache, the references bound to it, as a running proxy has them.</summary>
    private async Task<CredentialCache> CacheAsync()
    {
        var result = await LoadAsync();
        Assert.True(result.IsValid, string.Join(Environment.NewLine, result.Errors));
        var cache = new CredentialCache(result.Snapshot!.Credentials, _identity.Time, NullLoggerFactory.Instance);
        CredentialReference.BindAll(result.Snapshot.Credentials, cache);
        return cache;
    }

    [RequiresFact(BotocoreRdsToken.Python)]
    public async Task The_token_is_byte_for_byte_what_botocore_generate_db_auth_token_computes()
    {
        _config.Credential("orders-db", Rds());
        using var cache = await CacheAsync();
        var signedAt = _identity.Time.GetUtcNow();

        var lease = await cache.GetAsync("orders-db", CancellationToken.None);

        var keys = Assert.Single(_sts.IssuedKeys);
        var expected = await BotocoreRdsToken.ComputeAsync(Host, Port, User, "eu-west-1", signedAt, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken);
        Assert.StartsWith(Host + ":" + Port + "/?Action=connect&DBUser=" + User + "&", expected, StringComparison.Ordinal);
        Assert.Equal(expected, lease.Credential.Secret);
        Assert.Equal(User, lease.Credential.Username);
        Assert.Equal(signedAt, lease.Credential.ObtainedAt);
        Assert.Equal(signedAt + TimeSpan.FromMinutes(15), lease.Credential.ExpiresAt);
        Assert.Equal("Credential(***)", lease.Credential.ToString());

        // One STS session serves both: the token reused the cached keys of "aws".
        var aws = await cache.GetAsync("aws", CancellationToken.None);
        Assert.Equal(CacheOutcome.Hit, aws.Outcome);
        Assert.Single(_sts.Requests);
    }

    [RequiresFact(BotocoreRdsToken.Python)]
    public async Task A_user_name_that_needs_escaping_and_an_inferred_region_match_botocore_too()
    {
        const string OtherHost = "reports.c9akciq32.ap-southeast-2.rds.amazonaws.com";
        const string OtherUser = "report+reader@corp";
        _config.Credential("orders-db", Rds(d =>
        {
            d["Endpoint"] = OtherHost + ":3306";
            d["Username"] = OtherUser;
        }));
        using var cache = await CacheAsync();
        var signedAt = _identity.Time.GetUtcNow();

        var lease = await cache.GetAsync("orders-db", CancellationToken.None);

        var keys = Assert.Single(_sts.IssuedKeys);
        Assert.Equal(await BotocoreRdsToken.ComputeAsync(OtherHost, 3306, OtherUser, "ap-southeast-2", signedAt, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken), lease.Credential.Secret);
    }

    [Fact]
    public async Task The_token_never_outlives_its_keys_and_keys_about_to_expire_are_renewed_first()
    {
        _config.Credential("orders-db", Rds());
        // Keys for 10 minutes: the token (15 minutes) is cut to their expiry.
        _sts.Succeed(expiresIn: 600);
        using var cache = await CacheAsync();
        var first = await cache.GetAsync("orders-db", CancellationToken.None);
        Assert.Equal(_sts.IssuedKeys[0].Expiration, first.Credential.ExpiresAt);

        // 9.5 minutes on, the keys have 30 s left (less than a minute): the next token is signed
        // with new keys, not the dying ones. (The keys' own refresh ahead may have started a fetch
        // too; the token waits for a new one either way.)
        _identity.Advance(TimeSpan.FromSeconds(570));
        cache.Revoke("orders-db");
        var second = await cache.GetAsync("orders-db", CancellationToken.None);
        var used = Assert.Single(_sts.IssuedKeys, k => second.Credential.Secret.Contains("X-Amz-Credential=" + k.AccessKeyId + "%2F", StringComparison.Ordinal));
        Assert.NotEqual(_sts.IssuedKeys[0].AccessKeyId, used.AccessKeyId);
        Assert.Equal(used.Expiration, second.Credential.ExpiresAt);
    }

    [Fact]
    public async Task Revoking_the_keys_drops_the_token_they_signed()
    {
        _config.Credential("orders-db", Rds());
        using var cache = await CacheAsync();
        var first = await cache.GetAsync("orders-db", CancellationToken.None);
        Assert.Contains("X-Amz-Credential=" + _sts.IssuedKeys[0].AccessKeyId + "%2F", first.Credential.Secret, StringComparison.Ordinal);

        // The operator revokes the AWS keys: the token they signed must not stay in use for its 15 minutes.
        Assert.True(cache.Revoke("aws"));
        var second = await cache.GetAsync("orders-db", CancellationToken.None);

        Assert.Equal(CacheOutcome.Fetch, second.Outcome);
        Assert.Equal(2, _sts.IssuedKeys.Count);
        Assert.Contains("X-Amz-Credential=" + _sts.IssuedKeys[1].AccessKeyId + "%2F", second.Credential.Secret, StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_the_keys_cannot_be_had_the_reason_names_the_token_minting_and_the_sts_failure_without_secrets()
    {
        _config.Credential("orders-db", Rds());
        _sts.Fail(503, "<html>unavailable</html>", "text/html");
        using var cache = await CacheAsync();

        var ex = await Assert.ThrowsAsync<CredentialUnavailableException>(async () => await cache.GetAsync("orders-db", CancellationToken.None));

        Assert.StartsWith("no AWS keys to sign the RDS auth token with: credential 'aws' is unavailable: ", ex.Reason, StringComparison.Ordinal);
        Assert.Contains("STS", ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_inventory_description_names_endpoint_user_region_and_the_sts_role_that_signs()
    {
        _config.Credential("orders-db", Rds());
        var result = await LoadAsync();
        var source = result.Snapshot!.Credentials.Single(c => c.Name == "orders-db").Source;

        var description = source.Describe();

        Assert.Equal("AwsRdsAuthToken", source.Kind);
        Assert.Contains(Host + ":" + Port, description.IssuingSystem, StringComparison.Ordinal);
        Assert.Contains("user " + User, description.IssuingSystem, StringComparison.Ordinal);
        Assert.Contains("region eu-west-1", description.IssuingSystem, StringComparison.Ordinal);
        Assert.Contains("credential 'aws' (AWS STS eu-west-1, role " + RoleArn + ")", description.IssuingSystem, StringComparison.Ordinal);
        Assert.Contains("15 minutes", description.Lifetime, StringComparison.Ordinal);
        Assert.False(description.LongLived);
    }

    [Fact]
    public async Task Configuration_errors_are_reported_by_key()
    {
        _config.Credential("file", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("pw", "secret-pw"), ["Username"] = "u" })
            .Credential("no-signer", Rds(d => d.Remove("SigningCredential")))
            .Credential("wrong-shape", Rds(d => d["SigningCredential"] = "file"))
            .Credential("unknown", Rds(d => d["SigningCredential"] = "nope"))
            .Credential("self", Rds(d => d["SigningCredential"] = "self"))
            .Credential("no-endpoint", Rds(d => d.Remove("Endpoint")))
            .Credential("bad-endpoint", Rds(d => d["Endpoint"] = "https://db.example.com:5432"))
            .Credential("no-port", Rds(d => d["Endpoint"] = "db.example.com"))
            .Credential("no-region", Rds(d => d["Endpoint"] = "db.example.com:5432"))
            .Credential("bad-region", Rds(d => d["Region"] = "Europe"))
            .Credential("no-user", Rds(d => d.Remove("Username")))
            .Credential("user-file", Rds(d =>
            {
                d.Remove("Username");
                d["UsernameFile"] = _config.SecretFile("user", "u");
            }));

        var errors = (await ErrorsAsync()).Select(e => e.ToString()).ToArray();

        const string Root = "SecretlessProxy:Credentials:";
        Assert.Contains(errors, e => e.StartsWith(Root + "no-signer:SigningCredential: is required", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "wrong-shape:SigningCredential: credential 'file' does not yield the AWS keys that sign the token (SigningKeys)", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "unknown:SigningCredential: names unknown credential 'nope'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "self:SigningCredential: names this credential itself", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "no-endpoint:Endpoint: is required", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "bad-endpoint:Endpoint: 'https://db.example.com:5432' is not host:port", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "no-port:Endpoint: 'db.example.com' is not host:port", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "no-region:Region: is required", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "bad-region:Region: 'Europe' is not an AWS region", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "no-user:Username: is required", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "user-file:UsernameFile: does not apply", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains("secret-pw", StringComparison.Ordinal));
    }

    [Fact]
    public void References_that_form_a_cycle_are_refused_at_the_key_that_closes_it()
    {
        // No registered kind both yields signing keys and refers to another credential yet, so the
        // cycle check is shown on the references alone.
        var errors = new List<ConfigError>();
        var references = new CredentialReferences(_ => CredentialShape.SigningKeys);
        Assert.NotNull(references.Add("a", "SecretlessProxy:Credentials:a:SigningCredential", "b", CredentialShape.SigningKeys, "keys", errors));
        Assert.NotNull(references.Add("b", "SecretlessProxy:Credentials:b:SigningCredential", "c", CredentialShape.SigningKeys, "keys", errors));
        Assert.NotNull(references.Add("c", "SecretlessProxy:Credentials:c:SigningCredential", "a", CredentialShape.SigningKeys, "keys", errors));
        Assert.NotNull(references.Add("d", "SecretlessProxy:Credentials:d:SigningCredential", "a", CredentialShape.SigningKeys, "keys", errors));
        Assert.Empty(errors);

        references.CheckCycles(errors);

        Assert.Equal(
            ["SecretlessProxy:Credentials:a:SigningCredential", "SecretlessProxy:Credentials:b:SigningCredential", "SecretlessProxy:Credentials:c:SigningCredential"],
            errors.Select(e => e.Key).Order(StringComparer.Ordinal).ToArray());
        Assert.All(errors, e => Assert.Contains("must not form a cycle", e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_database_listener_must_verify_the_server_and_connect_to_the_endpoint_the_token_is_for()
    {
        _config.Credential("orders-db", Rds())
            .PostgresListener("plain", Host + ":" + Port, "orders-db", new JsonObject { ["Mode"] = "Require" })
            .PostgresListener("other-port", Host + ":5433", "orders-db")
            .PostgresListener("other-host", "orders-replica.eu-west-1.rds.amazonaws.com:5432", "orders-db")
            .PostgresListener("good", Host + ":" + Port, "orders-db");
        _config.Section["Listeners"]!["mysql"] = new JsonObject
        {
            ["Mode"] = "MySql",
            ["Url"] = "tcp://127.0.0.1:0",
            ["Upstream"] = Host + ":" + Port,
            ["Credential"] = "orders-db",
            ["Tls"] = new JsonObject { ["Mode"] = "Disable" },
        };

        var errors = (await ErrorsAsync()).Select(e => e.ToString()).ToArray();

        const string Root = "SecretlessProxy:Listeners:";
        Assert.Contains(errors, e => e.StartsWith(Root + "plain:Tls:Mode: must be VerifyFull with credential 'orders-db'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "mysql:Tls:Mode: must be VerifyFull with credential 'orders-db'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "other-port:Upstream: '" + Host + ":5433' is not the endpoint credential 'orders-db' is minted for (" + Host + ":" + Port + ")", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(Root + "other-host:Upstream: 'orders-replica.eu-west-1.rds.amazonaws.com:5432' is not the endpoint", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.StartsWith(Root + "good:", StringComparison.Ordinal));
    }

    public void Dispose()
    {
        _sts.Dispose();
        _config.Dispose();
        _http.Dispose();
        _accessor.Identity?.Dispose();
        _identity.Dispose();
    }
}
