using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Forwarding;

/// <summary>
/// What the app can no longer steer: the Host, SNI and certificate name of a route's upstream, the
/// request target's form, the method (TRACE), and routing-override headers. Checked at an upstream
/// that logs the bytes it received.
/// </summary>
public sealed class RequestSteeringTests : IAsyncLifetime
{
    private readonly TestConfig _config = new();
    private readonly string _secret = "steer-secret-" + Guid.NewGuid().ToString("N");
    private TestPki _pki = null!;
    private RawUpstream _plain = null!;
    private RawUpstream _tls = null!;

    public Task InitializeAsync()
    {
        _pki = new TestPki(_config.Directory);
        _plain = RawUpstream.Start();
        _tls = RawUpstream.Start(_pki.IssueServer());
        var plainApi = TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/v1/", ports: [_plain.Port]), "api-key", "X-Api-Key", "{token}");
        var legacy = TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/legacy/", ports: [_plain.Port]), "api-key", "X-Api-Key", "{token}");
        legacy["PassRoutingHeaders"] = new JsonArray("X-HTTP-Method-Override");
        _config.RouteListener("plain", "http://localhost:" + _plain.Port)
            .RouteListener("secure", "https://localhost:" + _tls.Port)
            .ForwardListener("forward", [_tls.Port])
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile })
            .Credential("api-key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("api-key", _secret) })
            .Policy("plain-api", plainApi)
            .Policy("legacy", legacy)
            .Policy("secure-api", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/v1/", ports: [_tls.Port]), "api-key", "X-Api-Key", "{token}"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _plain.DisposeAsync();
        await _tls.DisposeAsync();
        _pki.Dispose();
        _config.Dispose();
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_secret);
        return proxy;
    }

    /// <summary>Sends raw bytes to a listener and returns the whole response as text.</summary>
    private static async Task<string> RawAsync(ProxyHarness proxy, string listener, string request)
    {
        var uri = proxy.App.GetListenerUri(listener);
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(request));
        using var reader = new StreamReader(stream, Encoding.Latin1);
        return await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Route_to_https_sends_the_upstreams_host_and_sni_whatever_host_the_app_names()
    {
        await using var proxy = await StartAsync();

        var response = await RawAsync(proxy, "secure", "GET /v1/orders HTTP/1.1\r\nHost: other-tenant.example\r\nConnection: close\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 200", response);
        var got = Assert.Single(_tls.Received);
        Assert.Equal("localhost", got.Sni);
        Assert.Equal("localhost:" + _tls.Port, got.Header("Host"));
        Assert.Equal(_secret, got.Header("X-Api-Key"));
        Assert.DoesNotContain("other-tenant", got.Head);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task Route_refuses_an_absolute_form_target()
    {
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "-w", "\n%{http_code}", "-H", "Host: evil.example", "--request-target", "http://evil.example/v1/orders", proxy.App.GetListenerUri("plain").ToString()]);

        Assert.EndsWith("\n400", curl.Output);
        Assert.Contains("absolute-form-refused", curl.Output);
        Assert.Empty(_plain.Received);
    }

    [Fact]
    public async Task Tunnel_takes_an_absolute_form_target_only_for_its_own_authority()
    {
        await using var proxy = await StartAsync();
        var listener = proxy.App.GetListenerUri("forward").ToString().TrimEnd('/');
        // Host agrees with the target's authority, as Kestrel requires before the proxy sees the request.
        string[] Curl(string target) => ["-sS", "--http1.1", "-H", "Host: " + new Uri(target).Authority, "-w", "\n%{http_code}", "--noproxy", "", "-x", listener, "--cacert", Path.Combine(_config.Directory, "ca", "ca.crt"), "--request-target", target, "https://localhost:" + _tls.Port + "/"];

        var own = await ExternalClient.RunAsync("curl", Curl("https://localhost:" + _tls.Port + "/v1/own"));
        var other = await ExternalClient.RunAsync("curl", Curl("https://other.example:" + _tls.Port + "/v1/other"));
        var plain = await ExternalClient.RunAsync("curl", Curl("http://localhost:" + _tls.Port + "/v1/plain"));

        Assert.EndsWith("\n200", own.Output);
        Assert.EndsWith("\n421", other.Output);
        Assert.EndsWith("\n421", plain.Output);
        var got = Assert.Single(_tls.Received);
        Assert.Equal("/v1/own", got.Target);
        Assert.Equal(_secret, got.Header("X-Api-Key"));
    }

    [Fact]
    public async Task Routing_override_headers_are_removed_from_credentialed_requests_unless_the_policy_passes_them()
    {
        await using var proxy = await StartAsync();
        var overrides = "X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\nX-Method-Override: DELETE\r\n" +
            "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 10.9.9.9\r\nForwarded: host=evil.example\r\nX-Real-IP: 10.9.9.9\r\nX-Kept: yes\r\n";

        var v1 = await RawAsync(proxy, "plain", "GET /v1/orders HTTP/1.1\r\nHost: localhost\r\n" + overrides + "Connection: close\r\n\r\n");
        var legacy = await RawAsync(proxy, "plain", "POST /legacy/orders HTTP/1.1\r\nHost: localhost\r\n" + overrides + "Content-Length: 0\r\nConnection: close\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 200", v1);
        Assert.StartsWith("HTTP/1.1 200", legacy);
        var received = _plain.Received.ToArray();
        Assert.Equal(2, received.Length);
        foreach (var name in new[] { "X-Original-URL", "X-Rewrite-URL", "X-Method-Override", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-For", "Forwarded", "X-Real-IP" })
        {
            Assert.All(received, r => Assert.Null(r.Header(name)));
        }

        Assert.Null(received[0].Header("X-HTTP-Method-Override"));
        Assert.Equal("DELETE", received[1].Header("X-HTTP-Method-Override"));
        Assert.All(received, r => Assert.Equal("yes", r.Header("X-Kept")));
        Assert.All(received, r => Assert.Equal(_secret, r.Header("X-Api-Key")));
    }

    [Theory]
    [InlineData("TRACE")]
    [InlineData("TRACK")]
    public async Task Trace_and_track_never_carry_a_credential(string method)
    {
        await using var proxy = await StartAsync();

        var response = await RawAsync(proxy, "plain", method + " /v1/orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 405", response);
        Assert.Contains("method-refused", response);
        Assert.Empty(_plain.Received);
        Assert.DoesNotContain(_secret, response);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task An_encoded_slash_is_forwarded_once_encoded_not_twice()
    {
        // The issue's correctness bug: "..%2f" went out as "..%252f". A name with %2F under a policy
        // without AllowEncodedSlashes is refused; on a host no policy covers it passes byte for byte.
        _config.RouteListener("open", "http://127.0.0.1:" + _plain.Port, unmatched: "PassThrough");
        await using var proxy = await StartAsync();

        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--path-as-is", "-w", "\n%{http_code}", "--request-target", "/docs/a%2Fb?q=%2F", proxy.App.GetListenerUri("open").ToString()]);

        Assert.EndsWith("\n200", curl.Output);
        var got = Assert.Single(_plain.Received);
        Assert.Equal("/docs/a%2Fb?q=%2F", got.Target);
        Assert.Null(got.Header("X-Api-Key"));
    }
}
