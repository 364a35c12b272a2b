using System.Text.Json.Nodes;
using Xunit;
using static SecretlessProxy.Tests.Configuration.BaselineConfig;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// The Admin section: the admin endpoint stays on loopback or a Unix socket, the probe endpoint
/// gets its own port, and the ways to authorise state-changing calls are each checked by key.
/// </summary>
public sealed class AdminConfigTests : IDisposable
{
    private const string Admin = Root + ":Admin";

    private readonly BaselineConfig _config = new();

    private JsonObject AdminSection => _config.Section["Admin"]!.AsObject();

    [Theory]
    [InlineData("http://0.0.0.0:9901")]
    [InlineData("http://[::]:9901")]
    [InlineData("http://10.1.2.3:9901")]
    [InlineData("http://[::ffff:10.1.2.3]:9901")]
    public async Task An_admin_url_beyond_loopback_is_refused_and_points_at_the_probe_url(string url)
    {
        AdminSection["Url"] = url;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Admin + ":Url", "is not a loopback address");
        AssertProblem(result, Admin + ":Url", Admin + ":ProbeUrl");
        AssertOnlyKeys(result, Admin + ":Url");
    }

    [Theory]
    [InlineData("http://127.0.0.1:0")]
    [InlineData("http://127.0.0.2:9901")]
    [InlineData("http://[::1]:9901")]
    [InlineData("http://localhost:9901")]
    [InlineData("unix:/run/secretless/admin.sock")]
    public async Task Loopback_and_unix_socket_admin_urls_are_valid(string url)
    {
        AdminSection["Url"] = url;

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task A_relative_unix_socket_path_is_refused()
    {
        AdminSection["Url"] = "unix:admin.sock";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Admin + ":Url", "must name an absolute socket path");
        AssertOnlyKeys(result, Admin + ":Url");
    }

    [Fact]
    public async Task A_probe_url_may_face_the_pod_network()
    {
        AdminSection["ProbeUrl"] = "http://0.0.0.0:9902";

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task A_probe_url_on_the_admin_port_is_refused()
    {
        AdminSection["Url"] = "http://127.0.0.1:19901";
        AdminSection["ProbeUrl"] = "http://0.0.0.0:19901";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Admin + ":ProbeUrl", "port 19901 is already used by " + Admin + ":Url");
        AssertOnlyKeys(result, Admin + ":ProbeUrl");
    }

    [Fact]
    public async Task A_listener_on_the_probe_port_is_refused()
    {
        AdminSection["ProbeUrl"] = "http://0.0.0.0:19902";
        _config.Listener("payments")["Url"] = "http://127.0.0.1:19902";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Root + ":Listeners:payments:Url", "port 19902 is already used by " + Admin + ":ProbeUrl");
        AssertOnlyKeys(result, Root + ":Listeners:payments:Url");
    }

    [Theory]
    [InlineData("http://probes.local:9902", "is not an IP address or localhost")]
    [InlineData("http://0.0.0.0", "must name a port")]
    [InlineData("unix:/run/secretless/probes.sock", "is not an http://address:port URL")]
    public async Task A_bad_probe_url_is_named(string url, string message)
    {
        AdminSection["ProbeUrl"] = url;

        var result = await _config.ValidateAsync();

        AssertProblem(result, Admin + ":ProbeUrl", message);
        AssertOnlyKeys(result, Admin + ":ProbeUrl");
    }

    [Fact]
    public async Task A_missing_token_file_is_named()
    {
        AdminSection["TokenFile"] = Path.Combine(_config.Files.Directory, "no-such-token");

        var result = await _config.ValidateAsync();

        AssertProblem(result, Admin + ":TokenFile", "does not exist");
        AssertOnlyKeys(result, Admin + ":TokenFile");
    }

    [Fact]
    public async Task An_empty_token_file_key_is_refused()
    {
        AdminSection["TokenFile"] = "";

        var result = await _config.ValidateAsync();

        AssertProblem(result, Admin + ":TokenFile", "");
        AssertOnlyKeys(result, Admin + ":TokenFile");
    }

    [Fact]
    public async Task Allowed_uids_over_tcp_are_refused_as_nothing_could_check_them()
    {
        AdminSection["AllowedUids"] = new JsonArray(1000);

        var result = await _config.ValidateAsync();

        AssertProblem(result, Admin + ":AllowedUids", "applies only when " + Admin + ":Url is a unix: socket");
        AssertOnlyKeys(result, Admin + ":AllowedUids");
    }

    [Fact]
    public async Task Allowed_uids_on_a_unix_socket_are_valid()
    {
        AdminSection["Url"] = "unix:/run/secretless/admin.sock";
        AdminSection["AllowedUids"] = new JsonArray(0, 1000);

        var result = await _config.ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task A_negative_uid_is_named()
    {
        AdminSection["Url"] = "unix:/run/secretless/admin.sock";
        AdminSection["AllowedUids"] = new JsonArray(1000, -1);

        var result = await _config.ValidateAsync();

        AssertProblem(result, Admin + ":AllowedUids:1", "");
        AssertOnlyKeys(result, Admin + ":AllowedUids:1");
    }

    public void Dispose() => _config.Dispose();
}
