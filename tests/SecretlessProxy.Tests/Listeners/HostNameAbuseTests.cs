using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// What an app can do to the local CA through a Forward listener under a wildcard policy: CONNECT
/// names that are not host names (each used to reach the leaf's subject as "CN=" + host, and
/// "localhost;.example.test" threw an unhandled CryptographicException), and a stream of new host
/// names, each of which used to add a leaf that was never evicted. The listener answers the first
/// with a 400 problem and keeps serving; the second stays within LocalCa:MaxLeafCertificates while
/// every handshake, an evicted host's again included, still works.
/// </summary>
[Collection(ProcessMetricsCollection.Name)]
public sealed class HostNameAbuseTests : IAsyncLifetime
{
    private readonly TestConfig _config = new();
    private readonly string _apiKey = "host-abuse-key-" + Guid.NewGuid().ToString("N");
    private TestPki _pki = null!;
    private RawUpstream _upstream = null!;

    public Task InitializeAsync()
    {
        _pki = new TestPki(_config.Directory);
        _upstream = RawUpstream.Start(_pki.IssueServer());
        _config.ForwardListener("egress", [_upstream.Port])
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca"), ["MaxLeafCertificates"] = 8 })
            .Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile })
            .Credential("api-key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("api-key", _apiKey) })
            .Policy("local", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/v1/"), "api-key", "X-Api-Key", "{token}"))
            .Policy("wild", TestConfig.HeaderPolicy(TestConfig.Match(["*.example.test"], "/v1/"), "api-key", "X-Api-Key", "{token}"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _pki.Dispose();
        _config.Dispose();
    }

    private string LocalCaFile => Path.Combine(_config.Directory, "ca", "ca.crt");

    /// <summary>CONNECT targets (raw bytes: NUL and UTF-8 included) and what the listener must answer.</summary>
    private IEnumerable<(string What, byte[] Authority, string Expect)> Corpus()
    {
        var port = ":" + _upstream.Port;
        (string, byte[], string) Case(string what, string host, string expect) => (what, Encoding.UTF8.GetBytes(host + port), expect);
        var label59 = new string('h', 59);
        yield return Case("semicolon under the wildcard", "localhost;.example.test", "invalid-host");
        yield return Case("comma", "a,b.example.test", "invalid-host");
        yield return Case("equals sign", "a=b.example.test", "invalid-host");
        yield return Case("a distinguished name", "CN=x,O=y.example.test", "invalid-host");
        yield return Case("NUL", "a\0b.example.test", "invalid-host");
        yield return Case("unicode", "ünicode.example.test", "invalid-host");
        yield return Case("emoji", "\U0001F511.example.test", "invalid-host");
        yield return Case("overlong label", new string('a', 64) + ".example.test", "invalid-host");
        yield return Case("300-character name", string.Join('.', Enumerable.Repeat(label59, 5)) + ".example.test", "invalid-host");
        yield return Case("empty label", "a..example.test", "invalid-host");
        yield return Case("wildcard itself", "*.example.test", "invalid-host");
        yield return Case("underscore", "under_score.example.test", "invalid-host");
        yield return Case("leading hyphen", "-a.example.test", "invalid-host");
        yield return Case("percent escape", "a%2eb.example.test", "invalid-host");
        yield return Case("brackets around a name", "[x.example.test]", "invalid-host");
        yield return Case("IPv6 without brackets", "::1", "invalid-host");
        yield return Case("IPv6 with a zone", "[fe80::1%25eth0]", "invalid-host");
        yield return Case("short IPv4", "127.1", "invalid-host");
        yield return Case("space", "a b.example.test", "malformed");
        yield return Case("tab", "a\tb.example.test", "invalid-host");
        yield return Case("empty host", string.Empty, "malformed");
        yield return ("empty authority", [], "malformed");
        yield return Case("IPv6 literal in brackets", "[::1]", "no-policy");
        yield return Case("IPv4 literal", "127.0.0.1", "no-policy");
        yield return Case("a host under the wildcard", "good.example.test", "ok");
        yield return Case("upper case and the root dot", "Good.Example.Test.", "ok");
    }

    [Fact]
    public async Task Garbage_host_names_get_a_400_problem_and_the_listener_keeps_serving()
    {
        await using var proxy = await StartAsync();
        var failures = new List<string>();
        foreach (var (what, authority, expect) in Corpus())
        {
            var (status, body) = await RawConnectAsync(proxy, authority);
            var expected = expect switch
            {
                "invalid-host" or "malformed" => "HTTP/1.1 400 Bad Request",
                "no-policy" => "HTTP/1.1 403 Forbidden",
                _ => "HTTP/1.1 200 Connection Established",
            };
            if (status != expected ||
                (expect == "invalid-host" && !body.Contains("\"type\":\"urn:secretless-proxy:problem:invalid-host\"", StringComparison.Ordinal)) ||
                (expect == "malformed" && !body.Contains("authority-form", StringComparison.Ordinal)))
            {
                failures.Add(what + ": expected " + expect + ", got " + status + " " + body);
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));

        // Still serving: a real client through the same listener, and a TLS handshake under the wildcard.
        var curl = await ExternalClient.RunAsync("curl", ["-sS", "--fail-with-body", "--cacert", LocalCaFile, "https://localhost:" + _upstream.Port + "/v1/after"], ProxyEnvironment(proxy));
        Assert.True(curl.ExitCode == 0, curl.ToString());
        Assert.Equal("raw-ok", curl.Output);
        Assert.Equal(_apiKey, Assert.Single(_upstream.Received).Header("X-Api-Key"));
        using (var tunnel = await OpenTunnelAsync(proxy, "after.example.test."))
        {
            Assert.Equal("CN=after.example.test", tunnel.Certificate.Subject);
        }

        // Nothing escaped as an unhandled error, and no leaf was made for a refused name.
        Assert.DoesNotContain(proxy.Logs.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Error);
        Assert.DoesNotContain(proxy.Logs.Entries, e => e.AllText().Contains("CryptographicException", StringComparison.Ordinal));
        Assert.Contains(proxy.Logs.Entries, e => e.EventId.Id == EventIds.ConnectInvalidHost);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task Many_hosts_under_a_wildcard_keep_the_leaf_cache_within_its_bound_and_every_handshake_works()
    {
        await using var proxy = await StartAsync();

        // A tunnel opened first and kept: its leaf is evicted by the hosts below while it is in use.
        using var held = await OpenTunnelAsync(proxy, "localhost");
        Assert.Contains("raw-ok", await RequestAsync(held.Stream, "/v1/before"));

        for (var i = 0; i < 50; i++)
        {
            using var tunnel = await OpenTunnelAsync(proxy, "host-" + i + ".example.test");
            Assert.Equal("CN=host-" + i + ".example.test", tunnel.Certificate.Subject);
            Assert.True(proxy.App.State.Leaves!.Count <= 8, "the cache holds " + proxy.App.State.Leaves.Count + " leaves after host " + i);
        }

        var metrics = await MetricsAsync(proxy);
        Assert.True(Metric(metrics, "secretless_proxy_leaf_certificates_cached", null) is > 0 and <= 8, metrics);
        Assert.True(Metric(metrics, "secretless_proxy_leaf_certificates_evicted_total", "reason=\"evicted\"") >= 43, metrics);

        // An evicted host is issued a new leaf and works as before.
        using (var again = await OpenTunnelAsync(proxy, "host-0.example.test"))
        {
            Assert.Equal("CN=host-0.example.test", again.Certificate.Subject);
        }

        // The kept tunnel, whose leaf is long evicted, still carries requests.
        Assert.Contains("raw-ok", await RequestAsync(held.Stream, "/v1/after"));
        Assert.Equal(2, _upstream.Received.Count);
        Assert.All(_upstream.Received, r => Assert.Equal(_apiKey, r.Header("X-Api-Key")));
        Assert.True(proxy.App.State.Leaves!.Count <= 8);
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_apiKey);
        return proxy;
    }

    private static Dictionary<string, string> ProxyEnvironment(ProxyHarness proxy)
    {
        var url = proxy.App.GetListenerUri("egress").ToString().TrimEnd('/');
        return new() { ["HTTPS_PROXY"] = url, ["https_proxy"] = url };
    }

    private static async Task<(string Status, string Body)> RawConnectAsync(ProxyHarness proxy, byte[] authority)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(proxy.App.GetListenerEndPoint("egress"));
        await socket.SendAsync((byte[])[.. "CONNECT "u8, .. authority, .. " HTTP/1.1\r\nHost: x\r\n\r\n"u8]);
        var response = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
        {
            response.Append(Encoding.UTF8.GetString(buffer, 0, read));
            if (response.ToString().StartsWith("HTTP/1.1 200", StringComparison.Ordinal) && response.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
            {
                // An established tunnel waits for the client's TLS; the answer is complete.
                break;
            }
        }

        var text = response.ToString();
        var headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return (text[..text.IndexOf("\r\n", StringComparison.Ordinal)], text[(headEnd + 4)..]);
    }

    /// <summary>CONNECT to <paramref name="host"/> and a TLS handshake that trusts only the local CA and checks the name.</summary>
    private async Task<Tunnel> OpenTunnelAsync(ProxyHarness proxy, string host)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(proxy.App.GetListenerEndPoint("egress"));
        await socket.SendAsync(Encoding.ASCII.GetBytes("CONNECT " + host + ":" + _upstream.Port + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"));
        var buffer = new byte[1024];
        var read = await socket.ReceiveAsync(buffer);
        Assert.StartsWith("HTTP/1.1 200", Encoding.ASCII.GetString(buffer, 0, read));

        using var localCa = X509CertificateLoader.LoadCertificateFromFile(LocalCaFile);
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = host.TrimEnd('.'),
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { localCa },
                RevocationMode = X509RevocationMode.NoCheck,
            },
        });
        return new Tunnel(tls, X509CertificateLoader.LoadCertificate(tls.RemoteCertificate!.GetRawCertData()));
    }

    /// <summary>One kept-alive request in a tunnel; returns the response as text once the body has arrived.</summary>
    private async Task<string> RequestAsync(SslStream stream, string path)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET " + path + " HTTP/1.1\r\nHost: localhost:" + _upstream.Port + "\r\n\r\n"));
        var response = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!response.ToString().Contains("raw-ok", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, timeout.Token);
            if (read == 0)
            {
                break;
            }

            response.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return response.ToString();
    }

    private static async Task<string> MetricsAsync(ProxyHarness proxy)
    {
        using var admin = new HttpClient();
        return await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/metrics"));
    }

    private static double Metric(string metrics, string name, string? label)
    {
        var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal) && l.Length > name.Length && l[name.Length] is ' ' or '{' && (label is null || l.Contains(label, StringComparison.Ordinal)));
        Assert.True(line is not null, "no " + name + " in\n" + metrics);
        return double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private sealed class Tunnel(SslStream stream, X509Certificate2 certificate) : IDisposable
    {
        public SslStream Stream { get; } = stream;

        public X509Certificate2 Certificate { get; } = certificate;

        public void Dispose()
        {
            Certificate.Dispose();
            Stream.Dispose();
        }
    }
}
