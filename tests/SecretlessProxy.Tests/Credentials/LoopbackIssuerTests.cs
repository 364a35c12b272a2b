using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Hosting;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// Issuers on loopback (issue 14): a port on this host belongs to whichever process binds it
/// first, the app's included. An issuer URL there needs a Unix socket, a pinned certificate or an
/// opt-in that names the risk; the tests show what a squatter gets in each case: nothing.
/// </summary>
public sealed class LoopbackIssuerTests : IAsyncLifetime
{
    private const string Root = "SecretlessProxy";
    private const string ClientId = "orders-service";

    private readonly TestConfig _config = new();
    private readonly RawUpstream _upstream = RawUpstream.Start();
    private readonly string _clientSecret = "client-secret-" + Guid.NewGuid().ToString("N");
    private readonly string _secretFile;

    public LoopbackIssuerTests()
    {
        _secretFile = _config.SecretFile("client-secret", _clientSecret);
        _config.RouteListener("api", "http://127.0.0.1:" + _upstream.Port);
    }

    /// <summary>What a squatter would see of the client secret in a Basic header or a form body.</summary>
    private string[] SecretForms => [_clientSecret, Convert.ToBase64String(Encoding.UTF8.GetBytes(ClientId + ":" + _clientSecret))];

    private JsonObject OAuth2(string tokenUrl) => new()
    {
        ["Source"] = "OAuth2ClientCredentials",
        ["TokenUrl"] = tokenUrl,
        ["ClientId"] = ClientId,
        ["ClientSecretFile"] = _secretFile,
        ["RetryAttempts"] = 0,
    };

    private async Task<IReadOnlyList<ConfigError>> CompileErrorsAsync()
    {
        using var client = new HttpMessageInvoker(new SocketsHttpHandler());
        var result = await new ConfigLoader(TimeProvider.System, client).LoadAsync(_config.Write(), includeEnvironment: false);
        return result.Errors;
    }

    private static void AssertNamesTheThreeWays(ConfigError error)
    {
        Assert.Contains("is on loopback, where any local process (the app's too) can bind the port first", error.Message, StringComparison.Ordinal);
        Assert.Contains("UnixSocket", error.Message, StringComparison.Ordinal);
        Assert.Contains("PinnedCertificateSha256", error.Message, StringComparison.Ordinal);
        Assert.Contains("AllowLoopbackSquatting: true to accept that risk", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:9100/oauth/token")]
    [InlineData("http://127.8.9.10:9100/oauth/token")]
    [InlineData("http://localhost:9100/oauth/token")]
    [InlineData("http://LOCALHOST.:9100/oauth/token")]
    [InlineData("http://idp.localhost:9100/oauth/token")]
    [InlineData("http://[::1]:9100/oauth/token")]
    [InlineData("http://[::ffff:127.0.0.1]:9100/oauth/token")]
    [InlineData("http://0.0.0.0:9100/oauth/token")]
    [InlineData("http://2130706433:9100/oauth/token")]
    [InlineData("https://127.0.0.1:9443/oauth/token")]
    public async Task A_loopback_token_url_with_no_safe_way_to_reach_it_is_a_config_error(string tokenUrl)
    {
        _config.Credential("orders", OAuth2(tokenUrl));

        var errors = await CompileErrorsAsync();

        var error = Assert.Single(errors);
        Assert.Equal(Root + ":Credentials:orders:TokenUrl", error.Key);
        AssertNamesTheThreeWays(error);
        Assert.Contains("receive the client id and secret", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("AwsWebIdentity", "StsUrl", "http://127.0.0.1:4566/", "the workload token")]
    [InlineData("Vault", "Address", "http://127.0.0.1:8200", "the workload token at login, then the Vault token")]
    [InlineData("OAuth2TokenExchange", "TokenUrl", "http://localhost:9100/token", "the workload token")]
    [InlineData("AzureWorkloadIdentity", "AuthorityHost", "https://127.0.0.1:8443/", "the workload token")]
    public async Task Every_source_that_sends_a_token_refuses_a_loopback_issuer_alike(string source, string urlKey, string url, string carries)
    {
        var credential = new JsonObject { ["Source"] = source, [urlKey] = url };
        switch (source)
        {
            case "AwsWebIdentity":
                credential["RoleArn"] = "arn:aws:iam::123456789012:role/exporter";
                break;
            case "Vault":
                credential["AuthMethod"] = "Jwt";
                credential["Role"] = "orders";
                credential["SecretPath"] = "secret/payments/api";
                credential["Field"] = "api-key";
                break;
            case "AzureWorkloadIdentity":
                credential["TenantId"] = "contoso.onmicrosoft.com";
                credential["ClientId"] = "app-client-id";
                credential["Scopes"] = new JsonArray("https://storage.azure.com/.default");
                break;
        }

        // The sources that present the workload token need one configured (not verified here).
        _config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _config.SecretFile("workload-token", "not-a-jwt") })
            .Credential("issued", credential);

        var errors = await CompileErrorsAsync();

        var error = Assert.Single(errors);
        Assert.Equal(Root + ":Credentials:issued:" + urlKey, error.Key);
        AssertNamesTheThreeWays(error);
        Assert.Contains("receive " + carries, error.Message, StringComparison.Ordinal);

        // Each of the three ways satisfies it (a pin only where the URL is https).
        credential["AllowLoopbackSquatting"] = true;
        Assert.Empty(await CompileErrorsAsync());
        credential.Remove("AllowLoopbackSquatting");
        credential["UnixSocket"] = "/run/issuer/issuer.sock";
        Assert.Empty(await CompileErrorsAsync());
    }

    [Fact]
    public async Task The_identity_key_endpoint_on_loopback_needs_the_same()
    {
        _config.Set("Identity", new JsonObject
        {
            ["Source"] = "TokenFile", ["Path"] = _config.SecretFile("token", "x"), ["Audience"] = "secretless-proxy",
            ["JwksUrl"] = "http://127.0.0.1:9200/jwks",
        });

        var error = Assert.Single(await CompileErrorsAsync());

        Assert.Equal(Root + ":Identity:JwksUrl", error.Key);
        AssertNamesTheThreeWays(error);
        Assert.Contains("the power to mint any workload identity", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("UnixSocket", "run/issuer.sock", "UnixSocket", "is not an absolute socket path")]
    [InlineData("PinnedCertificateSha256", "abc", "PinnedCertificateSha256:0", "is not a SHA-256 fingerprint")]
    [InlineData("PinnedCertificateSha256", "plain-http", "PinnedCertificateSha256", "applies to https only")]
    [InlineData("AllowLoopbackSquatting", "with-socket", "AllowLoopbackSquatting", "is not needed with UnixSocket")]
    [InlineData("AllowLoopbackSquatting", "remote-ip", "AllowLoopbackSquatting", "applies to an issuer on this host only")]
    public async Task The_three_keys_are_checked(string key, string variant, string errorKey, string message)
    {
        var credential = OAuth2("http://localhost/oauth/token");
        switch (key, variant)
        {
            case ("UnixSocket", _):
                credential["UnixSocket"] = variant;
                break;
            case ("PinnedCertificateSha256", "plain-http"):
                credential["PinnedCertificateSha256"] = new JsonArray(new string('a', 64));
                break;
            case ("PinnedCertificateSha256", _):
                credential["TokenUrl"] = "https://127.0.0.1:9443/oauth/token";
                credential["PinnedCertificateSha256"] = new JsonArray(variant);
                break;
            case ("AllowLoopbackSquatting", "with-socket"):
                credential["UnixSocket"] = "/run/issuer/issuer.sock";
                credential["AllowLoopbackSquatting"] = true;
                break;
            default:
                credential["TokenUrl"] = "https://192.0.2.10/oauth/token";
                credential["AllowLoopbackSquatting"] = true;
                break;
        }

        _config.Credential("orders", credential);

        var errors = await CompileErrorsAsync();

        Assert.Contains(errors, e => e.Key == Root + ":Credentials:orders:" + errorKey && e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_keys_do_not_apply_to_a_file_credential()
    {
        _config.Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _secretFile, ["UnixSocket"] = "/run/x.sock" });

        var error = Assert.Single(await CompileErrorsAsync());

        Assert.Equal(Root + ":Credentials:key:UnixSocket", error.Key);
        Assert.Contains("does not apply to File", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_names_the_key_and_the_three_ways_for_a_loopback_token_url()
    {
        using var baseline = new BaselineConfig();
        baseline.Credential("payments-token")["TokenUrl"] = "http://127.0.0.1:9100/oauth/token";

        var result = await baseline.ValidateAsync();

        BaselineConfig.AssertProblem(result, Root + ":Credentials:payments-token:TokenUrl", "Reach it through UnixSocket (a socket path only the issuer can create), pin its certificate with PinnedCertificateSha256 (https), or set AllowLoopbackSquatting: true to accept that risk");
        BaselineConfig.AssertOnlyKeys(result, Root + ":Credentials:payments-token:TokenUrl");
    }

    [Fact]
    public async Task Validate_warns_about_an_opted_in_loopback_issuer_and_plain_http_and_nothing_else()
    {
        using var baseline = new BaselineConfig();
        var quiet = await baseline.ValidateAsync();
        Assert.True(quiet.ExitCode == 0, quiet.ToString());
        Assert.DoesNotContain("warning:", quiet.Output, StringComparison.Ordinal);

        baseline.Credential("payments-token")["TokenUrl"] = "http://127.0.0.1:9100/oauth/token";
        baseline.Credential("payments-token")["AllowLoopbackSquatting"] = true;
        baseline.Files.Credential("remote", new JsonObject
        {
            ["Source"] = "OAuth2ClientCredentials", ["TokenUrl"] = "http://auth.example.com/oauth/token", ["ClientId"] = "c", ["ClientSecretFile"] = baseline.ClientSecretFile,
        });
        baseline.Files.Credential("socket", new JsonObject
        {
            ["Source"] = "OAuth2ClientCredentials", ["TokenUrl"] = "http://localhost/oauth/token", ["UnixSocket"] = "/run/idp/token.sock", ["ClientId"] = "c", ["ClientSecretFile"] = baseline.ClientSecretFile,
        });

        var result = await baseline.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
        var warnings = result.Error.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith("warning: ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, warnings.Length);
        Assert.Contains(
            "warning: " + Root + ":Credentials:payments-token:TokenUrl: AllowLoopbackSquatting: any local process that binds 127.0.0.1:9100 before the issuer (the app's too) receives the client id and secret; use UnixSocket or PinnedCertificateSha256 instead",
            warnings);
        Assert.Contains(
            "warning: " + Root + ":Credentials:remote:TokenUrl: plain http: the proxy sends the client id and secret unencrypted to auth.example.com, where anyone on the path can read the request or answer in the issuer's place; use https",
            warnings);
    }

    [Fact]
    public async Task Start_up_refuses_a_loopback_token_url_and_a_squatter_on_the_port_receives_nothing()
    {
        await using var squatter = FakeIssuer.OnLoopback();
        _config.Credential("orders", OAuth2("http://127.0.0.1:" + squatter.Port + "/oauth/token"))
            .Policy("api", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "orders"));

        var refused = await Assert.ThrowsAsync<InvalidConfigurationException>(() => ProxyHarness.StartAsync(_config.Write()));

        var error = Assert.Single(refused.Errors);
        Assert.Equal(Root + ":Credentials:orders:TokenUrl", error.Key);
        AssertNamesTheThreeWays(error);
        Assert.DoesNotContain(_clientSecret, refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, squatter.Connections);
        Assert.Equal(string.Empty, squatter.RawReceived);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    public async Task The_shared_issuer_transport_never_connects_to_this_host(string host)
    {
        // Past configuration (a name that resolves to loopback, say), the transport itself refuses.
        await using var squatter = FakeIssuer.OnLoopback();
        using var client = HttpClients.CreateTokenClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://" + host + ":" + squatter.Port + "/oauth/token")
        {
            Content = new FormUrlEncodedContent([new("grant_type", "client_credentials")]),
        };
        request.Headers.Authorization = new("Basic", SecretForms[1]);

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => client.SendAsync(request, CancellationToken.None));

        Assert.StartsWith("refused to connect: " + host + " is on this host", IssuerTransport.Reason(failure), StringComparison.Ordinal);
        Assert.Contains("UnixSocket, PinnedCertificateSha256 or AllowLoopbackSquatting", IssuerTransport.Reason(failure), StringComparison.Ordinal);
        Assert.Equal(0, squatter.Connections);
        Assert.Equal(string.Empty, squatter.RawReceived);
    }

    [Fact]
    public async Task Over_a_unix_socket_the_token_request_reaches_the_issuer_and_the_credential_the_upstream()
    {
        var socket = Path.Combine(_config.Directory, "idp.sock");
        await using var issuer = FakeIssuer.OnUnixSocket(socket);
        var credential = OAuth2("http://localhost/oauth/token");
        credential["UnixSocket"] = socket;
        _config.Credential("orders", credential)
            .Policy("api", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "orders"));
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_clientSecret);
        proxy.NeverEmit(() => issuer.IssuedTokens);

        var (response, body) = await proxy.GetAsync("api", "/v1/orders");

        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var tokenRequest = Assert.Single(issuer.Requests);
        Assert.StartsWith("POST /oauth/token HTTP/1.1\r\n", tokenRequest, StringComparison.Ordinal);
        Assert.Contains("\r\nHost: localhost\r\n", tokenRequest, StringComparison.Ordinal);
        Assert.Contains("\r\nAuthorization: Basic " + SecretForms[1] + "\r\n", tokenRequest, StringComparison.Ordinal);
        var upstream = Assert.Single(_upstream.Received);
        Assert.Equal("Bearer " + Assert.Single(issuer.IssuedTokens), upstream.Header("Authorization"));
    }

    [Fact]
    public async Task A_pinned_issuer_gets_the_request_and_a_squatter_with_another_certificate_gets_nothing()
    {
        using var issuerCertificate = FakeIssuer.SelfSigned("issuer");
        await using var issuer = FakeIssuer.OnLoopback(CopyOf(issuerCertificate));
        await using var squatter = FakeIssuer.OnLoopback(FakeIssuer.SelfSigned("squatter"));
        var pin = SHA256.HashData(issuerCertificate.RawData);

        var good = OAuth2("https://127.0.0.1:" + issuer.Port + "/oauth/token");
        good["PinnedCertificateSha256"] = new JsonArray(Convert.ToHexString(pin));
        // The squatter holds the port the issuer was configured on; the pin is the issuer's (colon form).
        var squatted = OAuth2("https://127.0.0.1:" + squatter.Port + "/oauth/token");
        squatted["PinnedCertificateSha256"] = new JsonArray(string.Join(':', pin.Select(b => b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture))));
        _config.Credential("good", good).Credential("squatted", squatted)
            .Policy("good", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/good/"), "good"))
            .Policy("squatted", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/squatted/"), "squatted"));
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_clientSecret);
        proxy.NeverEmit(() => issuer.IssuedTokens.Concat(squatter.IssuedTokens));

        var (ok, okBody) = await proxy.GetAsync("api", "/good/orders");
        var (refused, refusedBody) = await proxy.GetAsync("api", "/squatted/orders");

        Assert.True(ok.StatusCode == HttpStatusCode.OK, okBody);
        Assert.Contains("\r\nAuthorization: Basic " + SecretForms[1] + "\r\n", Assert.Single(issuer.Requests), StringComparison.Ordinal);
        Assert.Equal("Bearer " + Assert.Single(issuer.IssuedTokens), Assert.Single(_upstream.Received).Header("Authorization"));

        // The proxy did reach the squatter, and the handshake failed on the pin before any request.
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.Equal(
            "policy 'squatted' needs credential 'squatted', which is unavailable: token endpoint unreachable (SecureConnectionError)",
            System.Text.Json.JsonDocument.Parse(refusedBody).RootElement.GetProperty("detail").GetString());
        Assert.True(squatter.Connections >= 1, "the proxy never tried the squatted port");
        Assert.Empty(squatter.Requests);
        Assert.Empty(squatter.IssuedTokens);
        foreach (var secret in SecretForms)
        {
            Assert.DoesNotContain(secret, squatter.RawReceived, StringComparison.Ordinal);
        }

        Assert.Single(_upstream.Received);
    }

    private static System.Security.Cryptography.X509Certificates.X509Certificate2 CopyOf(System.Security.Cryptography.X509Certificates.X509Certificate2 certificate) =>
        System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12), null);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _config.Dispose();
    }
}
