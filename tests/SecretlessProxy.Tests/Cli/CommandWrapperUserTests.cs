using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Cli;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Cli;

/// <summary>
/// <c>run -- command</c> keeps the command away from the proxy's secrets, tried as the command
/// would: the real binary (as root, and as an unprivileged uid through setpriv) wraps a real
/// python3 or shell that tries to read the credential file, the local CA's key and the proxy's
/// /proc files, and reports what it got. The secret files here sit in a world-traversable folder,
/// so their own mode is all that protects them.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class CommandWrapperUserTests : IAsyncLifetime
{
    private const string Python = "/usr/bin/python3";
    private const int Unprivileged = 1337;

    // What the command tries, one JSON line: its ids, each file it could or could not open, and a
    // request through the proxy.
    private const string ProbeScript = """
        import json, os, sys, urllib.request
        out = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups()}
        def attempt(name, path):
            try:
                with open(path, "rb") as f:
                    f.read(1)
                out[name] = "read"
            except PermissionError:
                out[name] = "denied"
            except OSError as e:
                out[name] = "error " + str(e.errno)
        ppid = os.getppid()
        attempt("credential", sys.argv[1])
        attempt("ca_key", sys.argv[2])
        attempt("proxy_environ", "/proc/%d/environ" % ppid)
        attempt("proxy_mem", "/proc/%d/mem" % ppid)
        with open("/proc/%d/cmdline" % ppid, "rb") as f:
            out["proxy_cmdline"] = f.read().decode(errors="replace").split("\0")
        with open("/proc/%d/status" % ppid) as f:
            out["proxy_uid"] = [l.split()[1] for l in f if l.startswith("Uid:")][0]
        with urllib.request.urlopen(sys.argv[3]) as r:
            out["status"] = r.status
            out["body"] = r.read().decode()
        print(json.dumps(out))
        """;

    private readonly TestConfig _config = new();
    private readonly string _apiKey = "user-key-" + Guid.NewGuid().ToString("N");

    // World-traversable (0755): only a file's own mode protects it here.
    private readonly string _secrets = Directory.CreateTempSubdirectory("secretless-secrets-").FullName;

    // Sticky and world-writable: scripts the command runs, markers it leaves.
    private readonly string _shared = Directory.CreateTempSubdirectory("secretless-shared-").FullName;
    private TestPki _pki = null!;
    private HttpsUpstream _upstream = null!;
    private string _credentialFile = null!;
    private string _caDirectory = null!;
    private string _probe = null!;

    public async Task InitializeAsync()
    {
        File.SetUnixFileMode(_secrets, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(_shared, (UnixFileMode)0b1_111_111_111);
        _pki = new TestPki(_config.Directory);
        _upstream = await HttpsUpstream.StartAsync(_pki.IssueServer());

        _credentialFile = Path.Combine(_secrets, "api-key");
        File.WriteAllText(_credentialFile, _apiKey + "\n");
        File.SetUnixFileMode(_credentialFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        // The CA directory exists and is open (0755), so the key the proxy creates in it is protected by its 0600 alone.
        _caDirectory = Directory.CreateDirectory(Path.Combine(_secrets, "ca")).FullName;
        File.SetUnixFileMode(_caDirectory, (UnixFileMode)0b111_101_101);

        _probe = Path.Combine(_shared, "probe.py");
        await File.WriteAllTextAsync(_probe, ProbeScript);

        _config.ForwardListener("egress", [_upstream.Port])
            .Set("Upstreams", new JsonObject { ["TrustedCaFile"] = _pki.CaFile })
            .Set("LocalCa", new JsonObject { ["Directory"] = _caDirectory })
            .Credential("api-key", new JsonObject { ["Source"] = "File", ["Path"] = _credentialFile })
            .Policy("localhost-read", TestConfig.HeaderPolicy(TestConfig.Match(["localhost"], "/v1/", ["GET"]), "api-key", "X-Api-Key", "{token}"));
    }

    private string CaKey => Path.Combine(_caDirectory, "ca.key");

    private string UpstreamUrl => "https://localhost:" + _upstream.Port + "/v1/orders";

    private Task<ExternalClient.Result> RunAsync(params string[] arguments) =>
        ProxyProcess.RunAsync(new[] { "run", "--config", _config.Write() }.Concat(arguments));

    private static JsonElement Report(ExternalClient.Result result)
    {
        Assert.True(result.ExitCode == 0, result.ToString());
        return JsonDocument.Parse(result.Output.Trim()).RootElement;
    }

    [RootFact(Python)]
    public async Task A_command_run_as_nobody_cannot_read_the_credential_the_ca_key_or_the_proxy_and_still_gets_its_call_through()
    {
        var result = await RunAsync("--", Python, _probe, _credentialFile, CaKey, UpstreamUrl);

        var report = Report(result);
        Assert.Equal(65534, report.GetProperty("uid").GetInt32());
        Assert.Equal(65534, report.GetProperty("euid").GetInt32());
        Assert.Equal(65534, report.GetProperty("gid").GetInt32());
        Assert.Equal(0, report.GetProperty("groups").GetArrayLength());
        Assert.Equal("denied", report.GetProperty("credential").GetString());
        Assert.Equal("denied", report.GetProperty("ca_key").GetString());
        Assert.Equal("denied", report.GetProperty("proxy_environ").GetString());
        Assert.Equal("denied", report.GetProperty("proxy_mem").GetString());
        // The parent it probed is the proxy itself (root), whose command line anyone may read.
        Assert.Equal("0", report.GetProperty("proxy_uid").GetString());
        Assert.Contains("run", report.GetProperty("proxy_cmdline").EnumerateArray().Select(a => a.GetString()));

        Assert.Equal(200, report.GetProperty("status").GetInt32());
        Assert.Equal("upstream-ok", report.GetProperty("body").GetString());
        Assert.Equal(_apiKey, Assert.Single(_upstream.Received).Headers["X-Api-Key"]);
        Assert.DoesNotContain(_apiKey, result.Output + result.Error);

        // The wrapper's log (stderr) names the user it started the command as, and its exit.
        Assert.Contains("Started " + Python + " (pid ", result.Error, StringComparison.Ordinal);
        Assert.Contains("as uid 65534 gid 65534, behind the proxy", result.Error, StringComparison.Ordinal);
        Assert.Contains(Python + " exited with code 0", result.Error, StringComparison.Ordinal);

        // The key really is there, 0600 and the proxy's: the command was kept from an existing file.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(CaKey));
    }

    [RootFact]
    public async Task User_uid_and_gid_are_set_with_no_groups_no_capabilities_and_no_new_privileges()
    {
        var result = await RunAsync("--user", "1234:4321", "--", "sh", "-c", "id -u; id -g; id -G; grep -E '^(NoNewPrivs|CapEff|CapPrm):' /proc/self/status");

        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToArray();
        Assert.Equal(["1234", "4321", "4321"], lines[..3]);
        Assert.Contains("NoNewPrivs:\t1", lines);
        Assert.Contains("CapEff:\t0000000000000000", lines);
        Assert.Contains("CapPrm:\t0000000000000000", lines);
    }

    [RootFact]
    public async Task User_may_be_a_name_from_the_user_database()
    {
        var result = await RunAsync("--user", "nobody", "--", "id", "-u");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("65534", result.Output.Trim());
    }

    [RootFact]
    public async Task A_command_that_does_not_exist_as_nobody_exits_127_as_under_a_shell()
    {
        var result = await RunAsync("--", "/no/such/command", "arg");

        Assert.Equal(ExitCodes.CommandNotFound, result.ExitCode);
        Assert.Contains("cannot start '/no/such/command': No such file or directory", result.Error, StringComparison.Ordinal);
    }

    [RootFact]
    public async Task User_that_does_not_exist_is_refused()
    {
        var result = await RunAsync("--user", "no-such-user-here", "--", "true");

        Assert.Equal(ExitCodes.Failure, result.ExitCode);
        Assert.Contains("there is no user named 'no-such-user-here'", result.Error, StringComparison.Ordinal);
    }

    [RootTheory]
    [InlineData(0b110_100_100, 0, "lets uid 65534 gid 65534 read it")]
    [InlineData(0b110_100_000, 65534, "lets uid 65534 gid 65534 read it")]
    public async Task A_secret_file_the_command_could_read_stops_the_run_before_the_command_starts(int mode, int group, string reason)
    {
        File.SetUnixFileMode(_credentialFile, (UnixFileMode)mode);
        var chgrp = await ExternalClient.RunAsync("chgrp", [group.ToString(System.Globalization.CultureInfo.InvariantCulture), _credentialFile]);
        Assert.True(chgrp.ExitCode == 0, chgrp.ToString());
        var marker = Path.Combine(_shared, "started");

        var result = await RunAsync("--", "touch", marker);

        Assert.Equal(ExitCodes.SecretReadableByCommand, result.ExitCode);
        Assert.Contains("refusing to start 'touch' as uid 65534 gid 65534: it could read the secret file '" + _credentialFile + "' (SecretlessProxy:Credentials:api-key:Path; mode 0" + Convert.ToString(mode, 8), result.Error, StringComparison.Ordinal);
        Assert.Contains(reason, result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(_apiKey, result.Output + result.Error);
        Assert.False(File.Exists(marker), "the command ran");
        Assert.Empty(_upstream.Received);
    }

    [RootFact("/usr/bin/setfacl")]
    public async Task A_secret_file_an_acl_opens_to_the_command_is_caught_by_exec_as_before_the_command_starts()
    {
        // Mode 0600 plus an ACL entry for nobody: the permission bits say no, the kernel says yes.
        var acl = await ExternalClient.RunAsync("/usr/bin/setfacl", ["-m", "u:65534:r", _credentialFile]);
        Assert.True(acl.ExitCode == 0, acl.ToString());
        var marker = Path.Combine(_shared, "started");

        var result = await RunAsync("--", "touch", marker);

        Assert.Equal(ExitCodes.SecretReadableByCommand, result.ExitCode);
        Assert.Contains("refusing to start 'touch' as uid 65534 gid 65534: it could read the secret file '" + _credentialFile + "'; make it readable by the proxy's user only", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(_apiKey, result.Output + result.Error);
        Assert.False(File.Exists(marker), "the command ran");
    }

    [RootFact]
    public async Task A_group_readable_secret_of_another_group_does_not_stop_the_run()
    {
        File.SetUnixFileMode(_credentialFile, (UnixFileMode)0b110_100_000);

        var result = await RunAsync("--", "true");

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [RootFact]
    public async Task A_proxy_that_is_not_root_refuses_user_for_another_uid_before_starting_anything()
    {
        var marker = Path.Combine(_shared, "started");

        var result = await ProxyProcess.RunAsync(
            ["run", "--config", _config.Write(), "--user", "65534", "--", "touch", marker],
            new Dictionary<string, string> { ["HOME"] = _shared },
            launcher: AsUnprivileged());

        Assert.Equal(ExitCodes.UserSwitchNotPermitted, result.ExitCode);
        Assert.Contains("--user 65534:65534 needs root: this proxy runs as uid " + Unprivileged, result.Error, StringComparison.Ordinal);
        Assert.Contains("nothing was started", result.Error, StringComparison.Ordinal);
        // No proxy log line: the refusal came before the configuration was even read.
        Assert.DoesNotContain("SecretlessProxy started", result.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(marker), "the command ran");
    }

    [RootFact(Python)]
    public async Task Under_one_uid_the_command_is_warned_about_and_the_proxy_memory_and_environment_are_still_closed_to_it()
    {
        // Everything the proxy reads belongs to the unprivileged uid, as for a proxy run by that user.
        await ChownAsync(_config.Directory);
        await ChownAsync(_secrets);
        var configPath = _config.Write();
        await ChownAsync(configPath);

        var result = await ProxyProcess.RunAsync(
            ["run", "--config", configPath, "--", Python, _probe, _credentialFile, CaKey, UpstreamUrl],
            new Dictionary<string, string> { ["HOME"] = _shared },
            launcher: AsUnprivileged());

        var report = Report(result);
        Assert.Equal(Unprivileged, report.GetProperty("uid").GetInt32());
        Assert.Equal(Unprivileged.ToString(System.Globalization.CultureInfo.InvariantCulture), report.GetProperty("proxy_uid").GetString());
        // Not dumpable: same uid, and still no /proc/<proxy>/environ or mem.
        Assert.Equal("denied", report.GetProperty("proxy_environ").GetString());
        Assert.Equal("denied", report.GetProperty("proxy_mem").GetString());
        // What the README says one uid cannot keep apart: the files.
        Assert.Equal("read", report.GetProperty("credential").GetString());
        Assert.Equal("read", report.GetProperty("ca_key").GetString());
        Assert.Contains("warning: '" + Python + "' runs as uid " + Unprivileged + ", the proxy's own: it can read the proxy's 3 secret file(s)", result.Error, StringComparison.Ordinal);
        Assert.Equal(200, report.GetProperty("status").GetInt32());
        Assert.Equal(_apiKey, Assert.Single(_upstream.Received).Headers["X-Api-Key"]);
    }

    [RootFact]
    public async Task Plain_run_marks_the_proxy_not_dumpable_so_its_proc_files_belong_to_root()
    {
        await ChownAsync(_config.Directory);
        await ChownAsync(_secrets);
        var configPath = _config.Write();
        await ChownAsync(configPath);
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var process = ProxyProcess.Start(AsUnprivileged(), ["run", "--config", configPath], new Dictionary<string, string> { ["HOME"] = _shared }, "SecretlessProxy");
        process.OutputDataReceived += (_, e) => lines.Enqueue(e.Data ?? string.Empty);
        process.ErrorDataReceived += (_, e) => lines.Enqueue(e.Data ?? string.Empty);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            for (var i = 0; i < 1200 && !lines.Any(l => l.Contains("is not dumpable", StringComparison.Ordinal)) && !process.HasExited; i++)
            {
                await Task.Delay(50);
            }

            Assert.True(lines.Any(l => l.Contains("Process " + process.Id + " is not dumpable", StringComparison.Ordinal)), string.Join("\n", lines));
            // The proxy runs as the unprivileged uid, yet its /proc files are root's: that uid cannot open them.
            Assert.Equal(Unprivileged.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadLines("/proc/" + process.Id + "/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t')[1]);
            var owner = await ExternalClient.RunAsync("stat", ["-c", "%u", "/proc/" + process.Id + "/environ"]);
            Assert.Equal("0", owner.Output.Trim());
            var asSameUid = await ExternalClient.RunAsync("/usr/bin/setpriv", [.. AsUnprivileged().Skip(1), "cat", "/proc/" + process.Id + "/environ"]);
            Assert.NotEqual(0, asSameUid.ExitCode);
            Assert.Contains("Permission denied", asSameUid.Error, StringComparison.Ordinal);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    [RootFact]
    public async Task Validate_warns_about_a_secret_file_others_can_read_and_still_exits_0()
    {
        File.SetUnixFileMode(_credentialFile, (UnixFileMode)0b110_100_100);
        var path = _config.Write();

        var result = await CliRunner.ValidateAsync(path);

        Assert.True(result.ExitCode == 0, result.ToString());
        var warning = Assert.Single(result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("warning: SecretlessProxy:Credentials:api-key:Path: secret file '" + _credentialFile + "' is readable by others (mode 0644, owner uid 0 gid 0 lets every user read it)", warning, StringComparison.Ordinal);
        Assert.DoesNotContain(_apiKey, result.Output + result.Error);

        File.SetUnixFileMode(_credentialFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Empty((await CliRunner.ValidateAsync(path)).Error);
    }

    private static string[] AsUnprivileged() =>
        ["/usr/bin/setpriv", "--reuid=" + Unprivileged, "--regid=" + Unprivileged, "--clear-groups"];

    private static async Task ChownAsync(string path)
    {
        var result = await ExternalClient.RunAsync("chown", ["-R", Unprivileged + ":" + Unprivileged, path]);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _pki.Dispose();
        _config.Dispose();
        Directory.Delete(_secrets, recursive: true);
        Directory.Delete(_shared, recursive: true);
    }
}
