using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// Forward-proxy mode with real, unmodified clients: curl and python3 honouring HTTPS_PROXY and a CA
/// bundle, against a real HTTPS upstream whose test CA the proxy trusts.
/// </summary>
public sealed class ForwardProxyTests : IAsyncLifetime
{
    private readonly TestConfig _config = new();
    private readonly string _apiKey = "forward-key-" + Guid.NewGuid().ToString("N");
    private TestPki _pki = null!;
    private HttpsUpstream _upstream = null!;
    private WireMockServer _plainUpstream = null!;

    public async Task InitializeAsync()
    {
        _pki = new TestPki(_config.Directory);
        _upstream = await HttpsUpstream.StartAsync(_pki.IssueServer());
        _plainUpstream = WireMockFactory.Start();
        _plainUpstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("plain-ok"));

        _config.ForwardListener("egress", [_upstream.Port, _plainUpstream.Ports[0]], unmatched: "PassThrough")
            .ForwardListener("strict", [_upstream.Port])
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile })
            .Credential("api-key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("api-key", _apiKey) })
            .Policy("localhost-read", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/v1/", ["GET"]), "api-key", "X-Api-Key", "{token}"));
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(_apiKey);
        return harness;
    }

    private string LocalCaFile => Path.Combine(_config.Directory, "ca", "ca.crt");

    private static Dictionary<string, string> ProxyEnvironment(ProxyHarness proxy, string listener)
    {
        var url = proxy.App.GetListenerUri(listener).ToString().TrimEnd('/');
        return new() { ["HTTPS_PROXY"] = url, ["https_proxy"] = url, ["HTTP_PROXY"] = url, ["http_proxy"] = url };
    }

    [Fact]
    public async Task Curl_through_https_proxy_reaches_the_upstream_with_the_credential_injected()
    {
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--fail-with-body", "--cacert", LocalCaFile, "-H", "X-Api-Key: app-value", "https://localhost:" + _upstream.Port + "/v1/orders?limit=1"], ProxyEnvironment(proxy, "egress"));

        Assert.True(curl.ExitCode == 0, curl.ToString());
        Assert.Equal("upstream-ok", curl.Output);
        var received = Assert.Single(_upstream.Received);
        Assert.Equal(_apiKey, received.Headers["X-Api-Key"]);
        Assert.Equal("/v1/orders?limit=1", received.PathAndQuery);
        // The proxy's own TLS session reached the upstream, verified against the test CA.
        Assert.Equal("localhost", received.Sni);
        Assert.Null(received.ClientCertificateSubject);
    }

    [Fact]
    public async Task Client_offering_h2_gets_http2_inside_the_tunnel()
    {
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--fail-with-body", "--http2", "-o", "/dev/null", "-w", "%{http_version}", "--cacert", LocalCaFile, "https://localhost:" + _upstream.Port + "/v1/h2"], ProxyEnvironment(proxy, "egress"));

        Assert.True(curl.ExitCode == 0, curl.ToString());
        Assert.Equal("2", curl.Output);
        Assert.Equal(_apiKey, Assert.Single(_upstream.Received).Headers["X-Api-Key"]);
    }

    [Fact]
    public async Task Python_urllib_through_https_proxy_reaches_the_upstream_with_the_credential_injected()
    {
        await using var proxy = await StartAsync();
        var script = "import urllib.request, sys\n" +
                     "r = urllib.request.urlopen('https://localhost:" + _upstream.Port + "/v1/items')\n" +
                     "sys.stdout.write(str(r.status) + ' ' + r.read().decode())\n";
        var environment = ProxyEnvironment(proxy, "egress");
        environment["SSL_CERT_FILE"] = LocalCaFile;

        var python = await ExternalClient.RunAsync("python3", ["-c", script], environment);

        Assert.True(python.ExitCode == 0, python.ToString());
        Assert.Equal("200 upstream-ok", python.Output);
        Assert.Equal(_apiKey, Assert.Single(_upstream.Received).Headers["X-Api-Key"]);
    }

    [Fact]
    public async Task Client_that_does_not_trust_the_local_ca_fails_the_handshake_and_nothing_is_sent()
    {
        await using var proxy = await StartAsync();

        // The upstream's own CA is not enough: the client sees the local CA's leaf and must refuse it.
        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--cacert", _pki.CaFile, "https://localhost:" + _upstream.Port + "/v1/orders"], ProxyEnvironment(proxy, "egress"));

        Assert.Equal(60, curl.ExitCode);
        Assert.Empty(_upstream.Received);
    }

    [Fact]
    public async Task Upstream_whose_certificate_the_proxy_does_not_trust_gets_502_and_no_credential()
    {
        _config.Set("Upstreams", new JsonObject());
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "-w", "\n%{http_code}", "--cacert", LocalCaFile, "https://localhost:" + _upstream.Port + "/v1/orders"], ProxyEnvironment(proxy, "egress"));

        Assert.EndsWith("\n502", curl.Output);
        Assert.Contains("Upstream request failed", curl.Output);
        Assert.Empty(_upstream.Received);
    }

    [Fact]
    public async Task Local_ca_mounted_as_cert_and_key_files_is_used_for_interception()
    {
        // Created once (as an operator would, then mounted as a Secret), then named by file.
        await using (await StartAsync())
        {
        }

        _config.Set("LocalCa", new JsonObject
        {
            ["CertFile"] = Path.Combine(_config.Directory, "ca", "ca.crt"),
            ["KeyFile"] = Path.Combine(_config.Directory, "ca", "ca.key"),
        });
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--fail-with-body", "--cacert", LocalCaFile, "https://localhost:" + _upstream.Port + "/v1/orders"], ProxyEnvironment(proxy, "egress"));

        Assert.True(curl.ExitCode == 0, curl.ToString());
        Assert.Equal(_apiKey, Assert.Single(_upstream.Received).Headers["X-Api-Key"]);
    }

    [Fact]
    public async Task Host_without_a_policy_is_tunnelled_blind_under_PassThrough()
    {
        await using var proxy = await StartAsync();
        var client = _pki.IssueClient(_config.Directory, "CN=blind-tunnel-client");

        // 127.0.0.1 has no policy: the client's own TLS session reaches the upstream, end to end.
        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--fail-with-body", "--cacert", _pki.CaFile, "--cert", client.CertFile, "--key", client.KeyFile, "-H", "X-Api-Key: app-value", "https://127.0.0.1:" + _upstream.Port + "/v1/orders"], ProxyEnvironment(proxy, "egress"));

        Assert.True(curl.ExitCode == 0, curl.ToString());
        var received = Assert.Single(_upstream.Received);
        Assert.Equal("CN=blind-tunnel-client", received.ClientCertificateSubject);
        Assert.Equal("app-value", received.Headers["X-Api-Key"]);

        // The blind tunnel is an access like any request: one span, one decision, nothing injected.
        var span = await TunnelSpanAsync(proxy, "egress");
        Assert.Equal("passthrough", span.GetTagItem("secretless.decision"));
        Assert.Equal("passed-through", span.GetTagItem("secretless.outcome"));
        var decision = await LastDecisionAsync(proxy);
        Assert.Equal("passthrough", (string?)decision["decision"]);
        Assert.Equal("CONNECT", (string?)decision["destination"]!["method"]);
        Assert.Equal("127.0.0.1", (string?)decision["destination"]!["host"]);
        Assert.Null(decision["credential"]!["name"]);
    }

    /// <summary>The span a CONNECT decided below HTTP produced on <paramref name="listener"/>, once the pipeline recorded it.</summary>
    private static async Task<System.Diagnostics.Activity> TunnelSpanAsync(ProxyHarness proxy, string listener)
    {
        System.Diagnostics.Activity? found = null;
        await Poll.UntilAsync(() => (found = proxy.Spans.LastOrDefault(s => s.DisplayName == "secretless.proxy" && (string?)s.GetTagItem("secretless.listener") == listener && s.GetTagItem("secretless.outcome") is not null)) is not null, "the tunnel's span");
        return found!;
    }

    private static async Task<JsonNode> LastDecisionAsync(ProxyHarness proxy)
    {
        using var admin = new HttpClient();
        var decisions = JsonNode.Parse(await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/decisions?limit=1")))!["decisions"]!.AsArray();
        return decisions[0]!;
    }

    [Fact]
    public async Task Host_without_a_policy_is_refused_under_Deny()
    {
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--cacert", _pki.CaFile, "https://127.0.0.1:" + _upstream.Port + "/v1/orders"], ProxyEnvironment(proxy, "strict"));

        Assert.Equal(56, curl.ExitCode);
        Assert.Contains("403", curl.Error);
        Assert.Empty(_upstream.Received);
        var span = await TunnelSpanAsync(proxy, "strict");
        Assert.Equal("deny", span.GetTagItem("secretless.decision"));
        Assert.Equal("denied", span.GetTagItem("secretless.outcome"));
        Assert.Equal("deny", (string?)(await LastDecisionAsync(proxy))["decision"]);
    }

    [Fact]
    public async Task Connect_to_a_port_that_is_not_allowed_is_refused()
    {
        await using var proxy = await StartAsync();
        var (status, body) = await RawConnectAsync(proxy, "strict", "localhost:22");

        Assert.Equal("HTTP/1.1 403 Forbidden", status);
        Assert.Contains("port 22 is not allowed", body);
        var span = await TunnelSpanAsync(proxy, "strict");
        Assert.Equal("denied", span.GetTagItem("secretless.outcome"));
        Assert.Equal(22, span.GetTagItem("server.port"));
    }

    [Theory]
    [InlineData("CONNECT localhost HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request")]
    [InlineData("CONNECT localhost:443 HTTP/1.1\r\nX-Pad: PAD\r\n", "HTTP/1.1 431 Request Header Fields Too Large")]
    public async Task Malformed_or_oversized_connect_gets_a_clear_error_and_the_listener_keeps_serving(string head, string expectedStatus)
    {
        await using var proxy = await StartAsync();
        head = head.Replace("PAD", new string('a', 20_000), StringComparison.Ordinal);

        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(proxy.App.GetListenerEndPoint("egress"));
            await socket.SendAsync(Encoding.ASCII.GetBytes(head));
            var buffer = new byte[4096];
            var read = await socket.ReceiveAsync(buffer);
            Assert.StartsWith(expectedStatus, Encoding.ASCII.GetString(buffer, 0, read));
        }

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--fail-with-body", "--cacert", LocalCaFile, "https://localhost:" + _upstream.Port + "/v1/after"], ProxyEnvironment(proxy, "egress"));
        Assert.True(curl.ExitCode == 0, curl.ToString());
    }

    [Fact]
    public async Task Request_naming_another_host_inside_the_tunnel_gets_421()
    {
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", LocalCaFile, "-H", "Host: other.example", "https://localhost:" + _upstream.Port + "/v1/orders"], ProxyEnvironment(proxy, "egress"));

        Assert.Equal("421", curl.Output);
        Assert.Empty(_upstream.Received);
    }

    [Fact]
    public async Task Tls_sni_that_differs_from_the_connect_host_fails_the_handshake()
    {
        await using var proxy = await StartAsync();
        using var socket = await OpenConnectAsync(proxy, "egress", "localhost:" + _upstream.Port);
        await using var tls = new SslStream(new NetworkStream(socket), false, (_, _, _, _) => true);

        await Assert.ThrowsAnyAsync<Exception>(() => tls.AuthenticateAsClientAsync("other.example"));
        Assert.Empty(_upstream.Received);
    }

    [Fact]
    public async Task Policy_is_evaluated_for_every_request_on_a_kept_alive_tunnel()
    {
        await using var proxy = await StartAsync();
        var localCa = X509CertificateLoader.LoadCertificateFromFile(LocalCaFile);
        using var handler = new SocketsHttpHandler
        {
            // The strict listener: what no policy allows is denied, not passed through.
            Proxy = new WebProxy(proxy.App.GetListenerUri("strict")),
            UseProxy = true,
            MaxConnectionsPerServer = 1,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.Add(localCa);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    return chain.Build((X509Certificate2)certificate!);
                },
            },
        };
        using var client = new HttpClient(handler);
        var url = "https://localhost:" + _upstream.Port + "/v1/orders";

        var get = await client.GetAsync(url);
        var post = await client.PostAsync(url, new StringContent("{}"));
        var again = await client.GetAsync(url);

        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, post.StatusCode);
        Assert.Equal("application/problem+json", post.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(2, _upstream.Received.Count);
        Assert.All(_upstream.Received, r => Assert.Equal("GET", r.Method));
    }

    [Fact]
    public async Task Plain_http_through_http_proxy_is_decided_and_injected_like_route_requests_when_the_policy_allows_http()
    {
        var match = TestConfig.Match(["localhost"], "/v1/", ["GET"]);
        match["Schemes"] = new JsonArray("http", "https");
        _config.Policy("localhost-read", TestConfig.HeaderPolicy(match, "api-key", "X-Api-Key", "{token}"));
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--fail-with-body", "-H", "X-Api-Key: app-value", "http://localhost:" + _plainUpstream.Ports[0] + "/v1/plain"], ProxyEnvironment(proxy, "egress"));
        var denied = await ExternalClient.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", "http://localhost:" + _plainUpstream.Ports[0] + "/v1/plain"], ProxyEnvironment(proxy, "strict"));

        Assert.True(curl.ExitCode == 0, curl.ToString());
        Assert.Equal("plain-ok", curl.Output);
        var received = Assert.Single(_plainUpstream.LogEntries).RequestMessage;
        Assert.Equal(_apiKey, received.Headers!["X-Api-Key"].Single());
        Assert.Equal("403", denied.Output);
    }

    [Fact]
    public async Task Plain_http_never_carries_the_credential_of_a_policy_written_for_https()
    {
        await using var proxy = await StartAsync();

        // The app names the policy's host over http:// to read the credential off the wire.
        var passed = await ExternalClient.RunAsync("curl", ["-sS", "--fail-with-body", "-H", "X-Api-Key: app-value", "http://localhost:" + _plainUpstream.Ports[0] + "/v1/plain"], ProxyEnvironment(proxy, "egress"));
        var strict = await ExternalClient.RunAsync("curl", ["-sS", "-w", "\n%{http_code}", "http://localhost:" + _plainUpstream.Ports[0] + "/v1/plain"], ProxyEnvironment(proxy, "strict"));

        // Pass-through listener: no policy matches http, so the request goes on with nothing injected.
        Assert.True(passed.ExitCode == 0, passed.ToString());
        var received = Assert.Single(_plainUpstream.LogEntries).RequestMessage;
        Assert.Equal("app-value", received.Headers!["X-Api-Key"].Single());
        // Deny listener: refused, and the upstream saw nothing more.
        Assert.EndsWith("403", strict.Output);
        Assert.Single(_plainUpstream.LogEntries);
        Assert.DoesNotContain(_apiKey, passed.Output + strict.Output);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task Ca_is_created_with_a_private_key_file_only_its_owner_can_read_and_export_prints_only_the_certificate()
    {
        await using (await StartAsync())
        {
        }

        var keyFile = Path.Combine(_config.Directory, "ca", "ca.key");
        Assert.True(OperatingSystem.IsLinux());
        if (OperatingSystem.IsLinux())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        }

        var output = new StringWriter();
        var exit = await SecretlessProxy.Cli.CliApp.InvokeAsync(["ca", "export", "--config", Path.Combine(_config.Directory, "proxy.json")], output, new StringWriter());

        Assert.Equal(0, exit);
        Assert.Equal(File.ReadAllText(LocalCaFile).Trim(), output.ToString().Trim());
        Assert.DoesNotContain("PRIVATE KEY", output.ToString());
    }

    private static async Task<Socket> OpenConnectAsync(ProxyHarness proxy, string listener, string authority)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(proxy.App.GetListenerEndPoint(listener));
        await socket.SendAsync(Encoding.ASCII.GetBytes("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
        var buffer = new byte[1024];
        var read = await socket.ReceiveAsync(buffer);
        Assert.StartsWith("HTTP/1.1 200", Encoding.ASCII.GetString(buffer, 0, read));
        return socket;
    }

    private static async Task<(string Status, string Body)> RawConnectAsync(ProxyHarness proxy, string listener, string authority)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(proxy.App.GetListenerEndPoint(listener));
        await socket.SendAsync(Encoding.ASCII.GetBytes("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"));
        var response = new StringBuilder();
        var buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer)) > 0)
        {
            response.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        var text = response.ToString();
        return (text[..text.IndexOf("\r\n", StringComparison.Ordinal)], text[(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]);
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _plainUpstream.Dispose();
        _pki.Dispose();
        _config.Dispose();
    }
}
