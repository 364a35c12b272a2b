using System.Diagnostics;
using System.Security.Cryptography;

namespace SecretlessProxy.Tests.Identity;

/// <summary>
/// A real client process for caller attestation tests (curl, /usr/bin/python3, possibly under
/// setpriv as another uid) and what the kernel says about it, read independently of the resolver.
/// </summary>
internal sealed class CallerClient : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stderr;

    private CallerClient(Process process)
    {
        _process = process;
        _stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
    }

    public int Pid => _process.Id;

    public static CallerClient Start(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var key in start.Environment.Keys.Where(k => k.EndsWith("_proxy", StringComparison.OrdinalIgnoreCase)).ToArray())
        {
            start.Environment.Remove(key);
        }

        return new CallerClient(Process.Start(start)!);
    }

    /// <summary>curl (or a copy of it) to a URL; it waits for a response the test never sends.</summary>
    public static CallerClient Curl(string url, string curl = "/usr/bin/curl", string[]? asUid = null, params string[] options) =>
        asUid is null
            ? Start(curl, ["-q", "-sS", "--max-time", "30", .. options, url])
            : Start("setpriv", [.. asUid, curl, "-q", "-sS", "--max-time", "30", .. options, url]);

    /// <summary>What went wrong, for an assertion message when the client never connected.</summary>
    public async Task<string> DescribeAsync()
    {
        if (!_process.HasExited)
        {
            return "still running";
        }

        return "exited " + _process.ExitCode + ": " + await _stderr;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    public static string Sha256Of(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>The path with every symbolic link resolved (/usr/bin/python3 → /usr/bin/python3.11).</summary>
    public static string RealPath(string path) => File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);

    /// <summary>The filesystem uid of a process (the 4th Uid: field of /proc/&lt;pid&gt;/status): the uid its sockets get.</summary>
    public static int FsUidOf(int pid)
    {
        var line = File.ReadLines("/proc/" + pid + "/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal));
        return int.Parse(line.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries)[4]);
    }

    /// <summary>The cgroup path the resolver should report, read here with the simplest rule: the v2 line, else the first line.</summary>
    public static string ExpectedCgroup(int pid)
    {
        var lines = File.ReadAllLines("/proc/" + pid + "/cgroup").Where(l => l.Length > 0).ToArray();
        var line = lines.FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal)) ?? lines[0];
        return line[(line.IndexOf(':', line.IndexOf(':') + 1) + 1)..];
    }

    public static bool IsRoot() => FsUidOf(Environment.ProcessId) == 0;

    public static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':')
            .Select(directory => Path.Combine(directory, program))
            .FirstOrDefault(File.Exists);
}
