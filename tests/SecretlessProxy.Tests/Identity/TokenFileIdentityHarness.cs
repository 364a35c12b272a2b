using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Identity;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Identity;

/// <summary>
/// A token file in a temp folder, an issuer (signing keys made in the test, its JWKS and discovery
/// document served by WireMock on 127.0.0.1), a fake clock and captured logs. Every token it signs is
/// remembered, so <see cref="AssertNothingLeaked"/> can check that no reason or log line repeats one.
/// </summary>
internal sealed class TokenFileIdentityHarness : IDisposable
{
    public const string JwksPath = "/keys";
    public const string DiscoveryPath = "/.well-known/openid-configuration";

    private static readonly Guid JwksMapping = Guid.NewGuid();
    private static readonly Guid DiscoveryMapping = Guid.NewGuid();

    private readonly ILoggerFactory _loggerFactory;
    private readonly List<string> _tokens = [];
    private readonly List<IdentityStatus> _statuses = [];
    private readonly List<TokenFileIdentity> _identities = [];

    public TokenFileIdentityHarness()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("identity-").FullName;
        TokenPath = Path.Combine(Directory, "token");

        // Years away from the real clock: a check that read the system clock instead of this one
        // would find every token not yet valid.
        Time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddYears(3).ToUnixTimeSeconds()));
        _loggerFactory = LoggerFactory.Create(builder => builder.AddProvider(Logs).SetMinimumLevel(LogLevel.Trace));
        Server = WireMockFactory.Start();
        Http = new HttpMessageInvoker(new SocketsHttpHandler());
    }

    public string Directory { get; }

    public string TokenPath { get; }

    public FakeTimeProvider Time { get; }

    public CapturingLoggerProvider Logs { get; } = new();

    public WireMockServer Server { get; }

    public HttpMessageInvoker Http { get; }

    /// <summary>The issuer URL when keys are discovered (the WireMock server itself).</summary>
    public string ServerIssuer => Server.LoopbackUrl();

    public Uri JwksUrl => new(Server.LoopbackUrl() + JwksPath);

    public int JwksRequests => Server.LogEntries.Count(e => e.RequestMessage.Path == JwksPath);

    public int DiscoveryRequests => Server.LogEntries.Count(e => e.RequestMessage.Path == DiscoveryPath);

    public TokenFileIdentity Start(string? issuer, string? audience, Uri? jwksUrl, TimeSpan? clockSkew = null, string? path = null)
    {
        var identity = new TokenFileIdentity(
            new TokenFileIdentitySettings(path ?? TokenPath, issuer, audience, jwksUrl, clockSkew ?? TimeSpan.FromSeconds(30)),
            Time,
            Http,
            _loggerFactory.CreateLogger<TokenFileIdentity>());
        _identities.Add(identity);
        return identity;
    }

    /// <summary>GetAsync, remembering the answer for <see cref="AssertNothingLeaked"/>.</summary>
    public async Task<IdentityStatus> GetAsync(TokenFileIdentity identity)
    {
        var status = await identity.GetAsync(CancellationToken.None);
        lock (_statuses)
        {
            _statuses.Add(status);
        }

        return status;
    }

    public void Advance(TimeSpan by) => Time.Advance(by);

    /// <summary>Past the interval between looks at the token file.</summary>
    public void AdvancePastStatInterval() => Time.Advance(TokenFileIdentity.StatInterval + TimeSpan.FromMilliseconds(1));

    public static TestKey RsaKey(string? kid = null) => TestKey.Rsa(kid ?? "rsa-" + Guid.NewGuid().ToString("N")[..8]);

    public static TestKey EcKey(string? kid = null) => TestKey.Ec(kid ?? "ec-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>The claims of a Kubernetes projected service-account token, valid for an hour from the fake now.</summary>
    public JsonObject Claims(string issuer, string audience, string subject, string ns = "jobs", string serviceAccount = "exporter")
    {
        var now = Time.GetUtcNow().ToUnixTimeSeconds();
        return new JsonObject
        {
            ["iss"] = issuer,
            ["sub"] = subject,
            ["aud"] = new JsonArray(audience),
            ["iat"] = now,
            ["nbf"] = now,
            ["exp"] = now + 3600,
            ["kubernetes.io"] = new JsonObject
            {
                ["namespace"] = ns,
                ["serviceaccount"] = new JsonObject { ["name"] = serviceAccount, ["uid"] = Guid.NewGuid().ToString() },
            },
        };
    }

    public string Sign(TestKey key, JsonObject claims) => Remember(new JsonWebTokenHandler().CreateToken(claims.ToJsonString(), key.Credentials));

    /// <summary>An unsecured JWT (alg "none", RFC 7519 section 6).</summary>
    public string Unsigned(JsonObject claims) => Remember(new JsonWebTokenHandler().CreateToken(claims.ToJsonString()));

    public void WriteToken(string token) => File.WriteAllText(TokenPath, token + "\n");

    public void ServeJwks(params TestKey[] keys)
    {
        var set = new JsonObject { ["keys"] = new JsonArray(keys.Select(k => (JsonNode)k.Jwk()).ToArray()) };
        ServeJwks(200, set.ToJsonString());
    }

    public void ServeJwks(int status, string body) =>
        Server.Given(Request.Create().WithPath(JwksPath).UsingGet())
            .WithGuid(JwksMapping)
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", "application/json").WithBody(body));

    public void ServeDiscovery(string issuer, string jwksUri) =>
        Server.Given(Request.Create().WithPath(DiscoveryPath).UsingGet())
            .WithGuid(DiscoveryMapping)
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithBody(new JsonObject { ["issuer"] = issuer, ["jwks_uri"] = jwksUri, ["id_token_signing_alg_values_supported"] = new JsonArray("RS256", "ES256") }.ToJsonString()));

    /// <summary>No failure reason and no captured log entry contains a token this harness signed, or its signature.</summary>
    public void AssertNothingLeaked()
    {
        string[] reasons;
        lock (_statuses)
        {
            reasons = _statuses.Select(s => s.FailureReason).OfType<string>().ToArray();
        }

        var logs = Logs.Entries.Select(e => e.AllText()).ToArray();
        foreach (var token in _tokens)
        {
            var signature = token.Split('.')[2];
            foreach (var text in reasons.Concat(logs))
            {
                Assert.DoesNotContain(token, text, StringComparison.Ordinal);
                if (signature.Length > 0)
                {
                    Assert.DoesNotContain(signature, text, StringComparison.Ordinal);
                }
            }
        }
    }

    public IReadOnlyList<CapturedLog> LogsWithEvent(int eventId) => Logs.Entries.Where(e => e.EventId.Id == eventId).ToArray();

    private string Remember(string token)
    {
        _tokens.Add(token);
        return token;
    }

    public void Dispose()
    {
        foreach (var identity in _identities)
        {
            identity.Dispose();
        }

        Http.Dispose();
        Server.Dispose();
        _loggerFactory.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    /// <summary>A signing key made in the test, and its public half as a JWK.</summary>
    public sealed class TestKey
    {
        private readonly Func<JsonObject> _jwk;

        private TestKey(SigningCredentials credentials, Func<JsonObject> jwk)
        {
            Credentials = credentials;
            _jwk = jwk;
        }

        public SigningCredentials Credentials { get; }

        public string Kid => Credentials.Key.KeyId;

        public JsonObject Jwk() => _jwk();

        public static TestKey Rsa(string kid)
        {
            var rsa = RSA.Create(2048);
            var parameters = rsa.ExportParameters(includePrivateParameters: false);
            return new TestKey(
                new SigningCredentials(new RsaSecurityKey(rsa) { KeyId = kid }, SecurityAlgorithms.RsaSha256),
                () => new JsonObject
                {
                    ["kty"] = "RSA",
                    ["kid"] = kid,
                    ["use"] = "sig",
                    ["alg"] = "RS256",
                    ["n"] = Base64UrlEncoder.Encode(parameters.Modulus),
                    ["e"] = Base64UrlEncoder.Encode(parameters.Exponent),
                });
        }

        public static TestKey Ec(string kid)
        {
            var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var parameters = ec.ExportParameters(includePrivateParameters: false);
            return new TestKey(
                new SigningCredentials(new ECDsaSecurityKey(ec) { KeyId = kid }, SecurityAlgorithms.EcdsaSha256),
                () => new JsonObject
                {
                    ["kty"] = "EC",
                    ["kid"] = kid,
                    ["use"] = "sig",
                    ["crv"] = "P-256",
                    ["x"] = Base64UrlEncoder.Encode(parameters.Q.X),
                    ["y"] = Base64UrlEncoder.Encode(parameters.Q.Y),
                });
        }
    }
}
