using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Cli;

/// <summary>
/// <c>secretless-proxy run --config FILE -- command</c> as a user runs it: the real binary wraps
/// unmodified curl, python3 and env, which reach an HTTPS upstream with a credential injected. The
/// tests run as root, so each command runs as nobody (the default under root): what it reads or
/// writes lives in a world-readable folder of its own.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class CommandWrapperTests : IAsyncLifetime
{
    private readonly TestConfig _config = new();

    // Sticky and world-writable, like /tmp: the wrapped command (nobody) reads scripts and writes markers here.
    private readonly string _shared = Directory.CreateTempSubdirectory("secretless-wrapped-").FullName;
    private readonly string _apiKey = "wrapped-key-" + Guid.NewGuid().ToString("N");
    private TestPki _pki = null!;
    private HttpsUpstream _upstream = null!;
    private string _configPath = null!;

    public async Task InitializeAsync()
    {
        File.SetUnixFileMode(_shared, (UnixFileMode)0b1_111_111_111);
        _pki = new TestPki(_config.Directory);
        _upstream = await HttpsUpstream.StartAsync(_pki.IssueServer());
        // No LocalCa in the file: the wrapper makes a throwaway one.
        _config.ForwardListener("egress", [_upstream.Port])
            .Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile })
            .Credential("api-key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("api-key", _apiKey) })
            .Policy("localhost-read", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/v1/", ["GET"]), "api-key", "X-Api-Key", "{token}"));
        _configPath = _config.Write();
    }

    private Task<ExternalClient.Result> RunWrappedAsync(params string[] command) =>
        ProxyProcess.RunAsync(new[] { "run", "--config", _configPath, "--" }.Concat(command));

    [Fact]
    public async Task Wrapped_curl_reaches_the_https_upstream_with_the_credential_injected()
    {
        var result = await RunWrappedAsync("curl", "-sS", "--fail-with-body", "https://localhost:" + _upstream.Port + "/v1/orders");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("upstream-ok", result.Output);
        Assert.Equal(_apiKey, Assert.Single(_upstream.Received).Headers["X-Api-Key"]);
        Assert.DoesNotContain(_apiKey, result.Output + result.Error);
    }

    [Fact]
    public async Task Wrapped_python_script_reaches_the_https_upstream_with_the_credential_injected()
    {
        var script = Path.Combine(_shared, "client.py");
        await File.WriteAllTextAsync(script,
            "import urllib.request, sys\n" +
            "r = urllib.request.urlopen('https://localhost:" + _upstream.Port + "/v1/items')\n" +
            "sys.stdout.write(str(r.status) + ' ' + r.read().decode())\n");

        var result = await RunWrappedAsync("python3", script);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("200 upstream-ok", result.Output);
        Assert.Equal(_apiKey, Assert.Single(_upstream.Received).Headers["X-Api-Key"]);
    }

    [Fact]
    public async Task Wrapped_environment_points_at_the_proxy_and_holds_no_secret()
    {
        var result = await RunWrappedAsync("env");

        Assert.Equal(0, result.ExitCode);
        var environment = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        Assert.DoesNotContain(_apiKey, result.Output);
        Assert.DoesNotContain(_apiKey, result.Error);
        var proxyUrl = environment["HTTPS_PROXY"];
        Assert.Matches("^http://127\\.0\\.0\\.1:[0-9]+$", proxyUrl);
        foreach (var name in new[] { "HTTP_PROXY", "http_proxy", "https_proxy" })
        {
            Assert.Equal(proxyUrl, environment[name]);
        }

        Assert.Equal("127.0.0.1,::1", environment["NO_PROXY"]);
        var bundle = environment["SSL_CERT_FILE"];
        foreach (var name in new[] { "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE" })
        {
            Assert.Equal(bundle, environment[name]);
        }

        // The bundle lived only as long as the wrapper.
        Assert.False(File.Exists(bundle));

        // What the exec-as step set for itself is gone again: the command's environment is the wrapper's.
        Assert.DoesNotContain("DOTNET_EnableDiagnostics", environment.Keys);
    }

    [Fact]
    public async Task Wrapper_exits_with_the_commands_exit_code()
    {
        var result = await RunWrappedAsync("sh", "-c", "exit 7");

        Assert.Equal(7, result.ExitCode);
    }

    [Fact]
    public async Task Sigterm_is_forwarded_to_the_command_and_its_exit_code_returned()
    {
        var marker = Path.Combine(_shared, "started");
        var result = await ProxyProcess.RunAsync(
            ["run", "--config", _configPath, "--", "sh", "-c", "trap 'kill $!; exit 42' TERM; touch " + marker + "; sleep 30 & wait"],
            whileRunning: async process =>
            {
                for (var i = 0; i < 300 && !File.Exists(marker); i++)
                {
                    await Task.Delay(50);
                }

                Assert.True(File.Exists(marker), "the wrapped command did not start");
                using var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
                await kill.WaitForExitAsync();
            });

        Assert.Equal(42, result.ExitCode);
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _pki.Dispose();
        _config.Dispose();
        Directory.Delete(_shared, recursive: true);
    }
}
