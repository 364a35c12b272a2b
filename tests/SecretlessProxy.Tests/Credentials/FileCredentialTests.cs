using System.Net;
using System.Text.Json.Nodes;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>File credentials as Kubernetes mounts them, rotated while the proxy runs.</summary>
public sealed class FileCredentialTests : IDisposable
{
    private readonly WireMockServer _upstream = WireMockFactory.Start();
    private readonly TestConfig _config = new();
    private readonly string _first = "first-key-" + Guid.NewGuid().ToString("N");
    private readonly string _second = "second-key-" + Guid.NewGuid().ToString("N");

    public FileCredentialTests()
    {
        _upstream.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        _config.RouteListener("legacy", _upstream.LoopbackUrl())
            .Policy("legacy-key", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/"), "static-key", "X-Api-Key", "{token}"));
    }

    private string LastApiKey() =>
        _upstream.LogEntries.Last().RequestMessage.Headers!.First(h => h.Key.Equals("X-Api-Key", StringComparison.OrdinalIgnoreCase)).Value.Single();

    private async Task<ProxyHarness> StartAsync(string path)
    {
        _config.Credential("static-key", new JsonObject { ["Source"] = "File", ["Path"] = path });
        var harness = await ProxyHarness.StartAsync(_config.Write());
        harness.NeverEmit(_first, _second);
        return harness;
    }

    [Fact]
    public async Task Rotated_kubernetes_secret_volume_is_used_on_the_next_request()
    {
        // The layout kubelet writes: key -> ..data/key, ..data -> ..<timestamp>/ swapped atomically.
        var volume = Path.Combine(_config.Directory, "volume");
        Directory.CreateDirectory(Path.Combine(volume, "..2026_11_23_v1"));
        File.WriteAllText(Path.Combine(volume, "..2026_11_23_v1", "api-key"), _first + "\n");
        Directory.CreateSymbolicLink(Path.Combine(volume, "..data"), "..2026_11_23_v1");
        File.CreateSymbolicLink(Path.Combine(volume, "api-key"), "..data/api-key");
        await using var proxy = await StartAsync(Path.Combine(volume, "api-key"));

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("legacy", "/x")).Response.StatusCode);
        Assert.Equal(_first, LastApiKey());

        Directory.CreateDirectory(Path.Combine(volume, "..2026_11_23_v2"));
        File.WriteAllText(Path.Combine(volume, "..2026_11_23_v2", "api-key"), _second + "\n");
        Directory.CreateSymbolicLink(Path.Combine(volume, "..data_tmp"), "..2026_11_23_v2");
        // rename(2) over the old link: the swap is atomic, as kubelet's is.
        Assert.Equal(0, Rename(Path.Combine(volume, "..data_tmp"), Path.Combine(volume, "..data")));
        Directory.Delete(Path.Combine(volume, "..2026_11_23_v1"), recursive: true);

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("legacy", "/y")).Response.StatusCode);
        Assert.Equal(_second, LastApiKey());
    }

    [Fact]
    public async Task Rewritten_file_is_used_on_the_next_request_and_trailing_newline_is_trimmed()
    {
        var path = _config.SecretFile("api-key", _first);
        await using var proxy = await StartAsync(path);
        await proxy.GetAsync("legacy", "/x");
        Assert.Equal(_first, LastApiKey());

        File.WriteAllText(path, _second + "\r\n");
        await proxy.GetAsync("legacy", "/y");
        Assert.Equal(_second, LastApiKey());
    }

    [Fact]
    public async Task Deleted_file_fails_closed_with_503()
    {
        var path = _config.SecretFile("api-key", _first);
        await using var proxy = await StartAsync(path);
        await proxy.GetAsync("legacy", "/x");

        File.Delete(path);
        var (response, body) = await proxy.GetAsync("legacy", "/y");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("does not exist", body);
        Assert.Single(_upstream.LogEntries);
    }

    // File.Move refuses a symlink that points at a directory; kubelet uses rename(2) directly.
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename(string oldPath, string newPath);

    public void Dispose()
    {
        _upstream.Dispose();
        _config.Dispose();
    }
}
