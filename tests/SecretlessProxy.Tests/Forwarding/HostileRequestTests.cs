using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Forwarding;

/// <summary>
/// The hostile-request corpus (hostile-requests.tsv) sent with real curl (--path-as-is,
/// --request-target) through every HTTP listener mode to an upstream that logs the bytes it
/// received. Every request that reached the upstream with the credential must stay inside its
/// policy's prefix under the normalisations of nginx, Tomcat/Spring and IIS; every case gets the
/// status the corpus names; nothing refused reaches the upstream.
/// </summary>
public sealed class HostileRequestTests : IAsyncLifetime
{
    private readonly TestConfig _config = new();
    private readonly string _secret = "hostile-secret-" + Guid.NewGuid().ToString("N");
    private TestPki _pki = null!;
    private RawUpstream _plain = null!;
    private RawUpstream _tls = null!;

    public async Task InitializeAsync()
    {
        _pki = new TestPki(_config.Directory);
        _plain = RawUpstream.Start();
        _tls = RawUpstream.Start(_pki.IssueServer());
        var schemes = new JsonArray("http", "https");
        var api = TestConfig.Match(["localhost"], "/v1/");
        api["Schemes"] = schemes.DeepClone();
        var files = TestConfig.Match(["localhost"], "/files/");
        files["Schemes"] = schemes.DeepClone();
        files["AllowEncodedSlashes"] = true;
        _config.RouteListener("route", "http://localhost:" + _plain.Port)
            .ForwardListener("forward", [_tls.Port])
            .Set("LocalCa", new JsonObject { ["Directory"] = Path.Combine(_config.Directory, "ca") })
            .Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile })
            .Credential("api-key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("api-key", _secret) })
            .Policy("api", TestConfig.HeaderPolicy(api, "api-key", "X-Api-Key", "{token}"))
            .Policy("files", TestConfig.HeaderPolicy(files, "api-key", "X-Api-Key", "{token}"));
        await Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _plain.DisposeAsync();
        await _tls.DisposeAsync();
        _pki.Dispose();
        _config.Dispose();
    }

    public static IEnumerable<(string Expect, string Target, string What)> Corpus() =>
        File.ReadLines(RepoPaths.Combine("tests", "SecretlessProxy.Tests", "Forwarding", "hostile-requests.tsv"))
            .Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l.Split('\t'))
            .Select(f => (f[0], f[1], f[2]));

    [Fact]
    public void Corpus_has_cases_of_every_outcome()
    {
        var corpus = Corpus().ToList();
        Assert.True(corpus.Count >= 50, "corpus has " + corpus.Count + " cases");
        Assert.Contains(corpus, c => c.Expect == "ok");
        Assert.Contains(corpus, c => c.Expect == "403");
        Assert.Contains(corpus, c => c.Expect == "400");
        Assert.All(corpus, c => Assert.Contains(c.Expect, new[] { "ok", "400", "403" }));
    }

    [Theory]
    [InlineData("route")]
    [InlineData("route-raw")]
    [InlineData("forward")]
    [InlineData("tunnel")]
    public async Task Corpus_through_every_http_mode_sends_the_credential_only_inside_the_policy(string mode)
    {
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_secret);
        var upstream = mode == "tunnel" ? _tls : _plain;
        var failures = new List<string>();
        foreach (var (expect, target, what) in Corpus())
        {
            var before = upstream.Received.Count;
            var curl = mode == "route-raw" ? await RawAsync(proxy, target) : await ExternalClient.RunAsync("curl", CurlArguments(proxy, mode, target));
            var received = upstream.Received.Skip(before).ToList();
            var status = curl.Output.Length >= 3 ? curl.Output[^3..] : curl.Output;
            var label = mode + " " + target + " (" + what + "): ";
            if (curl.Output.Contains(_secret, StringComparison.Ordinal))
            {
                failures.Add(label + "the response carried the secret");
            }

            foreach (var request in received.Where(r => r.Head.Contains(_secret, StringComparison.Ordinal)))
            {
                // The bytes the upstream got, read the way each common upstream would read them.
                var path = request.Target.Split('?')[0];
                foreach (var (server, normalised) in UpstreamReadings(path))
                {
                    if (!normalised.StartsWith("/v1/", StringComparison.Ordinal) && !normalised.StartsWith("/files/", StringComparison.Ordinal))
                    {
                        failures.Add(label + "the credential reached " + server + "'s " + normalised);
                    }
                }
            }

            switch (expect)
            {
                case "ok":
                    var got = received.SingleOrDefault();
                    if (status != "200" || got is null)
                    {
                        failures.Add(label + "expected 200 at the upstream, got " + status + " and " + received.Count + " request(s): " + curl);
                    }
                    else if (got.Target != target || got.Header("X-Api-Key") != _secret)
                    {
                        failures.Add(label + "the upstream did not get the target byte for byte with the credential: " + got.RequestLine);
                    }

                    break;
                default:
                    if (status != expect || received.Count != 0)
                    {
                        failures.Add(label + "expected " + expect + " and nothing upstream, got " + status + " and " + received.Count + " request(s)");
                    }

                    // The proxy's 400 names the reason; an empty one is Kestrel's own refusal of the
                    // request line (an encoded NUL), before the proxy saw it.
                    var body = curl.Output[..^3].Trim();
                    if (expect == "400" && body.Length > 0 && !body.Contains("\"type\":\"urn:secretless-proxy:problem:ambiguous-path\"", StringComparison.Ordinal))
                    {
                        failures.Add(label + "the 400 does not name the reason: " + curl.Output);
                    }

                    break;
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        await proxy.AssertNoSecretEmittedAsync();
    }

    /// <summary>
    /// The target written on a raw socket, no client in between; the result shaped like curl's
    /// (body, then the status on the last line).
    /// </summary>
    private static async Task<ExternalClient.Result> RawAsync(ProxyHarness proxy, string target)
    {
        var uri = proxy.App.GetListenerUri("route");
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes("GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(stream, Encoding.Latin1);
        var response = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var status = response.Length >= 12 ? response.Substring(9, 3) : "000";
        var bodyAt = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var body = bodyAt < 0 ? string.Empty : response[(bodyAt + 4)..];
        return new ExternalClient.Result(0, body + "\n" + status, string.Empty);
    }

    private string[] CurlArguments(ProxyHarness proxy, string mode, string target)
    {
        var listener = proxy.App.GetListenerUri(mode.StartsWith("route", StringComparison.Ordinal) ? "route" : "forward").ToString().TrimEnd('/');
        return mode switch
        {
            "route" => ["-sS", "--path-as-is", "-w", "\n%{http_code}", "--request-target", target, listener + "/"],
            "forward" => ["-sS", "--path-as-is", "-w", "\n%{http_code}", "--noproxy", "", "-x", listener, "--request-target", "http://localhost:" + _plain.Port + target, "http://localhost:" + _plain.Port + "/"],
            // HTTP/1.1 in the tunnel too, so that Kestrel's own refusals look alike in every mode.
            _ => ["-sS", "--http1.1", "--path-as-is", "-w", "\n%{http_code}", "--noproxy", "", "-x", listener, "--cacert", Path.Combine(_config.Directory, "ca", "ca.crt"), "--request-target", target, "https://localhost:" + _tls.Port + "/"],
        };
    }

    /// <summary>
    /// How nginx (decode once, resolve dot segments, merge slashes), Tomcat/Spring (drop ';'
    /// parameters, decode, resolve) and IIS (decode, backslash is a slash, trailing dots and spaces
    /// trimmed, resolve) read a path, plus a reader that decodes twice.
    /// </summary>
    public static IEnumerable<(string Server, string Path)> UpstreamReadings(string raw)
    {
        yield return ("nginx", Resolve(Decode(raw), parameters: false, backslash: false, trim: false));
        yield return ("Tomcat/Spring", Resolve(Decode(StripParameters(raw)), parameters: true, backslash: false, trim: false));
        yield return ("IIS", Resolve(Decode(raw), parameters: false, backslash: true, trim: true));
        yield return ("a double decoder", Resolve(Decode(Decode(raw)), parameters: true, backslash: true, trim: true));
    }

    private static string StripParameters(string path) =>
        string.Join('/', path.Split('/').Select(s => s.Split(';')[0]));

    private static string Decode(string path)
    {
        var bytes = new List<byte>();
        for (var i = 0; i < path.Length; i++)
        {
            if (path[i] == '%' && i + 2 < path.Length && Uri.IsHexDigit(path[i + 1]) && Uri.IsHexDigit(path[i + 2]))
            {
                bytes.Add(Convert.ToByte(path.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(path[i].ToString()));
            }
        }

        // Lenient like the servers that accept overlong forms: C0 AE and E0 80 AE read as '.'.
        var text = Encoding.Latin1.GetString(bytes.ToArray());
        return text.Replace("\u00c0\u00ae", ".").Replace("\u00e0\u0080\u00ae", ".");
    }

    private static string Resolve(string path, bool parameters, bool backslash, bool trim)
    {
        if (backslash)
        {
            path = path.Replace('\\', '/');
        }

        var output = new List<string>();
        foreach (var raw in path.Split('/'))
        {
            var segment = parameters ? raw.Split(';')[0] : raw;
            if (trim)
            {
                segment = segment.TrimEnd('.', ' ') is { Length: 0 } && segment.Length > 0 ? (segment.Count(c => c == '.') >= 2 ? ".." : ".") : segment.TrimEnd(' ');
            }

            switch (segment)
            {
                case "" or ".":
                    continue;
                case "..":
                    if (output.Count > 0)
                    {
                        output.RemoveAt(output.Count - 1);
                    }

                    continue;
                default:
                    output.Add(segment);
                    break;
            }
        }

        return "/" + string.Join('/', output) + (path.EndsWith('/') ? "/" : string.Empty);
    }
}
