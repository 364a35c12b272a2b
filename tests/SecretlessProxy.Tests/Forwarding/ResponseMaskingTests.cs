using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Forwarding;

/// <summary>
/// Issue 13, "the secret never comes back": an upstream that reflects the request (headers, cookies,
/// challenges, reason phrase, body, redirects) must not hand the injected value back to the app.
/// The app is curl (<c>-i</c>: the status line, every header and the decoded body as it got them).
/// </summary>
public sealed class ResponseMaskingTests : IAsyncLifetime
{
    // '/', '+' and '=' make the percent-encoded form that the Query injector sends differ from the raw one.
    private readonly string _secret = "resp-key/" + Guid.NewGuid().ToString("N") + "+x=y";
    private readonly TestConfig _config = new();
    private EchoUpstream _upstream = null!;

    private string Basic => Convert.ToBase64String(Encoding.UTF8.GetBytes("legacy-user:" + _secret));

    private string[] Forms => [_secret, Uri.EscapeDataString(_secret), Basic];

    public async Task InitializeAsync()
    {
        _upstream = await EchoUpstream.StartAsync();
        _config.RouteListener("app", _upstream.Url)
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _secret), ["Username"] = "legacy-user" })
            .Policy("bearer", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/bearer/"), "key"))
            .Policy("basic", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"], "/basic/"),
                ["Credential"] = "key",
                ["Inject"] = new JsonObject { ["Basic"] = true },
            })
            .Policy("query", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"], "/query/"),
                ["Credential"] = "key",
                ["Inject"] = new JsonObject { ["Query"] = "api_key" },
            });
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _config.Dispose();
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(Forms);
        return harness;
    }

    private static string Masked(string value) => new('*', value.Length);

    /// <summary>curl as the app: status line, headers and body exactly as received (the body de-chunked).</summary>
    private static async Task<string> CurlAsync(Uri url, IReadOnlyDictionary<string, string>? environment = null, params string[] extra)
    {
        var result = await ExternalClient.RunAsync("curl", ["-sS", "-i", .. (extra.Length == 0 ? ["--http1.1"] : extra), url.ToString()], environment);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Output;
    }

    private void AssertNoForm(string received)
    {
        foreach (var form in Forms)
        {
            Assert.DoesNotContain(form, received, StringComparison.Ordinal);
        }
    }

    private static string BodyOf(string curlOutput) => curlOutput[(curlOutput.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];

    [Fact]
    public async Task Headers_cookies_challenges_and_the_reason_phrase_that_echo_the_credential_are_masked()
    {
        await using var proxy = await StartAsync();

        var received = await CurlAsync(proxy.Listener("app", "/bearer/echo/headers"));

        AssertNoForm(received);
        Assert.StartsWith("HTTP/1.1 401 Bad credential Bearer " + Masked(_secret) + "\r\n", received);
        Assert.Contains("X-Echo-Authorization: Bearer " + Masked(_secret) + "\r\n", received);
        Assert.Contains("Set-Cookie: debug=Bearer " + Masked(_secret) + "; Path=/; HttpOnly\r\n", received);
        Assert.Contains("WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"token Bearer " + Masked(_secret) + " expired\"\r\n", received);
        Assert.Equal("denied", BodyOf(received));
    }

    [Theory]
    [InlineData("/bearer/echo/body")]
    [InlineData("/bearer/echo/body?length=1")]
    public async Task A_body_reflecting_the_credential_one_byte_per_write_is_masked_without_changing_its_length(string path)
    {
        await using var proxy = await StartAsync();

        var received = await CurlAsync(proxy.Listener("app", path));

        AssertNoForm(received);
        var sent = Encoding.UTF8.GetString(_upstream.LastBody);
        Assert.Contains("Authorization: Bearer " + _secret + "\n", sent);
        Assert.Equal(sent.Replace(_secret, Masked(_secret), StringComparison.Ordinal), BodyOf(received));
        if (path.EndsWith("length=1", StringComparison.Ordinal))
        {
            Assert.Contains("Content-Length: " + _upstream.LastBody.Length + "\r\n", received);
        }
        else
        {
            Assert.Contains("Transfer-Encoding: chunked\r\n", received);
        }
    }

    [Fact]
    public async Task A_value_split_between_two_reads_is_masked_and_only_its_possible_start_is_held_back()
    {
        await using var proxy = await StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Listener("app", "/bearer/echo/split"));
        using var response = await proxy.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();

        // The upstream has sent "before Bearer <first half of the value>" and waits: the app gets the
        // bytes that cannot start the value, and the proxy holds back the half it cannot yet judge.
        var first = new byte["before Bearer ".Length];
        await body.ReadExactlyAsync(first);
        Assert.Equal("before Bearer ", Encoding.UTF8.GetString(first));
        _upstream.ReleaseSplit();
        var rest = await new StreamReader(body).ReadToEndAsync();

        Assert.Equal(Masked(_secret) + " after\n", rest);
        Assert.Equal(_upstream.LastBody.Length, first.Length + Encoding.UTF8.GetByteCount(rest));
    }

    [Fact]
    public async Task Basic_credentials_are_masked_in_their_encoded_form_and_as_the_decoded_password()
    {
        await using var proxy = await StartAsync();

        var headers = await CurlAsync(proxy.Listener("app", "/basic/echo/body"));
        var decoded = await CurlAsync(proxy.Listener("app", "/basic/echo/basic"));

        AssertNoForm(headers);
        AssertNoForm(decoded);
        Assert.Contains("Authorization: Basic " + Masked(Basic) + "\n", BodyOf(headers));
        Assert.Equal("user=legacy-user\npassword=" + Masked(_secret) + "\n", BodyOf(decoded));
    }

    [Fact]
    public async Task A_query_credential_reflected_in_the_body_is_masked_in_its_percent_encoded_form()
    {
        await using var proxy = await StartAsync();

        var received = await CurlAsync(proxy.Listener("app", "/query/echo/body?x=1"));

        AssertNoForm(received);
        var escaped = Uri.EscapeDataString(_secret);
        Assert.Contains("GET /query/echo/body?x=1&api_key=" + escaped + "\n", Encoding.UTF8.GetString(_upstream.LastBody));
        Assert.StartsWith("GET /query/echo/body?x=1&api_key=" + Masked(escaped) + "\n", BodyOf(received));
    }

    [Fact]
    public async Task A_gzip_body_is_passed_untouched_a_documented_limit()
    {
        await using var proxy = await StartAsync();
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AutomaticDecompression = DecompressionMethods.None });

        var bytes = await client.GetByteArrayAsync(proxy.Listener("app", "/bearer/echo/gzip"));

        Assert.Equal(_upstream.LastBody, bytes);
        using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
        Assert.Contains(_secret, await new StreamReader(gzip).ReadToEndAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Python_http_server_trailing_slash_redirect_does_not_hand_back_a_query_credential()
    {
        var root = Path.Combine(_config.Directory, "www");
        Directory.CreateDirectory(Path.Combine(root, "query", "dir"));
        using var server = Process.Start(new ProcessStartInfo("python3", ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", root])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        try
        {
            // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
            var banner = await server.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.NotNull(banner);
            var port = banner!.Split(" port ")[1].Split(' ')[0];
            _config.RouteListener("python", "http://127.0.0.1:" + port);
            await using var proxy = await StartAsync();

            var received = await CurlAsync(proxy.Listener("python", "/query/dir?x=1&y=%2F"));

            AssertNoForm(received);
            Assert.StartsWith("HTTP/1.1 301 ", received);
            Assert.Contains("Location: /query/dir/?x=1&y=%2F\r\n", received);
        }
        finally
        {
            server.Kill();
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_secret_shorter_than_the_minimum_is_not_masked_on_its_own_and_the_proxy_warns()
    {
        var shortSecret = "k3y";
        _config.Credential("short", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("short", shortSecret) })
            .Policy("short", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/short/"), "short", "X-Api-Key", "{token}"));
        await using var proxy = await StartAsync();

        var received = await CurlAsync(proxy.Listener("app", "/short/echo/body"));

        // Masking a 3-byte value would corrupt any body that happens to contain it.
        Assert.Contains("X-Api-Key: k3y\n", BodyOf(received));
        var warning = Assert.Single(proxy.Logs.Entries, e => e.EventId.Id == 300);
        Assert.DoesNotContain(shortSecret, warning.AllText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_intercepted_tunnel_over_http2_masks_the_reflected_credential_too()
    {
        using var pki = new TestPki(_config.Directory);
        await using var upstream = await EchoUpstream.StartAsync(pki.IssueServer());
        _config.ForwardListener("egress", [upstream.Port])
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Set("Upstreams", new JsonObject { ["TrustedCaFile"] = pki.CaFile })
            .Policy("tunnel", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/v1/"), "key", "X-Api-Key", "{token}"));
        await using var proxy = await StartAsync();
        var proxyUrl = proxy.App.GetListenerUri("egress").ToString().TrimEnd('/');
        var environment = new Dictionary<string, string> { ["HTTPS_PROXY"] = proxyUrl, ["https_proxy"] = proxyUrl };
        var caFile = Path.Combine(_config.Directory, "ca", "ca.crt");

        var headers = await CurlAsync(new Uri("https://localhost:" + upstream.Port + "/v1/echo/headers"), environment, "--http2", "--cacert", caFile);
        var body = await CurlAsync(new Uri("https://localhost:" + upstream.Port + "/v1/echo/body"), environment, "--http2", "--cacert", caFile);

        AssertNoForm(headers);
        AssertNoForm(body);
        Assert.Contains("HTTP/2 401", headers);
        Assert.Contains("x-echo-x-api-key: " + Masked(_secret) + "\r\n", headers);
        Assert.Contains("set-cookie: debug=" + Masked(_secret) + "; Path=/; HttpOnly\r\n", headers);
        Assert.Contains("\nx-api-key: " + Masked(_secret) + "\n", BodyOf(body), StringComparison.OrdinalIgnoreCase);
    }
}
