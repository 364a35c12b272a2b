using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using SecretlessProxy.Tests.Credentials;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.MintedTokens;

/// <summary>
/// A fake issuer of the access tokens a cloud database takes as the password, and the credential
/// <c>db-login</c> that fetches one for the workload: Microsoft Entra (WireMock over TLS at
/// <c>AuthorityHost</c>, the real Azure.Identity/MSAL stack, scope
/// <c>https://ossrdbms-aad.database.windows.net/.default</c>) for Azure Database for PostgreSQL /
/// MySQL, or Google's STS token exchange (RFC 8693, scope <c>sqlservice.login</c>) for Cloud SQL IAM
/// database authentication. Each call issues a new recognisable token.
/// </summary>
internal sealed class AccessTokenIssuer : IDisposable
{
    public const string EntraScope = "https://ossrdbms-aad.database.windows.net/.default";
    public const string GoogleScope = "https://www.googleapis.com/auth/sqlservice.login";
    private const string Tenant = "7a3f0c1e-5b2d-4e8f-9a61-0c2b3d4e5f60";
    private const string EntraTokenPath = "/" + Tenant + "/oauth2/v2.0/token";
    private const string GoogleTokenPath = "/v1/token";

    private readonly ConcurrentQueue<string> _issued = new();
    private readonly WireMockServer _server;
    private readonly TestPki? _pki;
    private readonly string _path;
    private int _count;

    private AccessTokenIssuer(bool entra, string directory)
    {
        IsEntra = entra;
        if (entra)
        {
            _pki = new TestPki(directory);
            _server = AzureIdentityTests.StartHttps(_pki, directory);
            _path = EntraTokenPath;
        }
        else
        {
            _server = WireMockFactory.Start();
            _path = GoogleTokenPath;
        }

        Serve();
    }

    public static AccessTokenIssuer Entra(TestConfig config) => new(entra: true, config.Directory);

    public static AccessTokenIssuer Google(TestConfig config) => new(entra: false, config.Directory);

    public bool IsEntra { get; }

    /// <summary>The proxy's clock (MSAL's token cache reads the real one; both start at now).</summary>
    public FakeTimeProvider Time { get; } = new(DateTimeOffset.UtcNow);

    public IReadOnlyList<string> Issued => _issued.ToArray();

    public string WorkloadToken { get; private set; } = string.Empty;

    public IEnumerable<string> Secrets => _issued.Append(WorkloadToken).Where(s => s.Length > 0);

    /// <summary>Writes the workload token and adds Identity and the <c>db-login</c> credential for <paramref name="user"/>.</summary>
    public void Configure(TestConfig config, string user)
    {
        WorkloadToken = Credentials.WorkloadToken.Write(config, Time.GetUtcNow());
        config.Credential("db-login", IsEntra
            ? new JsonObject
            {
                ["Source"] = "AzureWorkloadIdentity",
                ["TenantId"] = Tenant,
                ["ClientId"] = "0e1d2c3b-4a59-4687-9abc-def012345678",
                ["Scopes"] = new JsonArray(EntraScope),
                ["AuthorityHost"] = "https://127.0.0.1:" + _server.Ports[0] + "/",
                ["AllowLoopbackSquatting"] = true,
                ["CaFile"] = _pki!.CaFile,
                ["RetryDelay"] = "00:00:00",
                ["RetryAttempts"] = 0,
                ["Username"] = user,
            }
            : new JsonObject
            {
                ["Source"] = "OAuth2TokenExchange",
                ["TokenUrl"] = _server.LoopbackUrl() + GoogleTokenPath,
                ["AllowLoopbackSquatting"] = true,
                ["Audience"] = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pool/providers/k8s",
                ["Scopes"] = new JsonArray(GoogleScope),
                ["RequestedTokenType"] = "urn:ietf:params:oauth:token-type:access_token",
                ["RetryDelay"] = "00:00:00",
                ["RetryAttempts"] = 0,
                ["Username"] = user,
            });
    }

    /// <summary>Answers every token request with a new access token valid for <paramref name="expiresIn"/> seconds.</summary>
    public void Serve(int expiresIn = 3600)
    {
        _server.ResetMappings();
        _server.Given(Request.Create().UsingAnyMethod()).AtPriority(100).RespondWith(Response.Create().WithStatusCode(404));
        _server.Given(Request.Create().WithPath(_path).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json; charset=utf-8").WithBody(_ =>
            {
                var token = (IsEntra ? "eyJ0eXAiOiJKV1Qi.entra-" : "ya29.google-") + Guid.NewGuid().ToString("N") + "-" + Interlocked.Increment(ref _count);
                _issued.Enqueue(token);
                var answer = new JsonObject { ["access_token"] = token, ["token_type"] = "Bearer", ["expires_in"] = expiresIn };
                if (IsEntra)
                {
                    answer["ext_expires_in"] = expiresIn;
                }
                else
                {
                    answer["issued_token_type"] = "urn:ietf:params:oauth:token-type:access_token";
                }

                return answer.ToJsonString();
            }));
    }

    /// <summary>Answers every token request with something that is not a token answer at all.</summary>
    public void AnswerGarbage()
    {
        _server.ResetMappings();
        _server.Given(Request.Create().WithPath(_path).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "text/html").WithBody("<html><body>captive portal</body></html>"));
    }

    public void Dispose()
    {
        _server.Dispose();
        _pki?.Dispose();
    }
}
