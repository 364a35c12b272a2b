using System.Diagnostics;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// Starts the real <c>secretless-proxy</c> in a child process, with an environment of its own, so
/// tests can exercise what reads process-wide state (environment variables, OTEL_* settings)
/// without touching the test process.
/// </summary>
public static class ProxyProcess
{
    /// <param name="environment">Set in the child; variables with the given prefixes are removed first.</param>
    public static Process Start(IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, params string[] clearPrefixes) =>
        Start([], arguments, environment, clearPrefixes);

    /// <param name="launcher">A command the proxy runs under, e.g. <c>setpriv --reuid=1337 ...</c>; empty for none.</param>
    /// <param name="environment">Set in the child; variables with the given prefixes are removed first.</param>
    public static Process Start(IReadOnlyList<string> launcher, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, params string[] clearPrefixes)
    {
        // Under a launcher the proxy may run as another uid, which must be able to reach the build.
        var dll = Path.Combine(launcher.Count > 0 ? ReachableBuild.Directory : AppContext.BaseDirectory, "secretless-proxy.dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException(dll + " is not in the test output");
        }

        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo(launcher.Count > 0 ? launcher[0] : host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (launcher.Count > 0)
        {
            foreach (var part in launcher.Skip(1))
            {
                start.ArgumentList.Add(part);
            }

            start.ArgumentList.Add(host);
        }

        start.ArgumentList.Add(dll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var key in start.Environment.Keys.Where(k => clearPrefixes.Any(p => k.StartsWith(p, StringComparison.OrdinalIgnoreCase))).ToArray())
        {
            start.Environment.Remove(key);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        return Process.Start(start)!;
    }

    /// <summary>Runs the CLI to completion and returns what it printed.</summary>
    public static async Task<ExternalClient.Result> RunAsync(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, Func<Process, Task>? whileRunning = null, IReadOnlyList<string>? launcher = null)
    {
        using var process = Start(launcher ?? [], arguments, environment ?? new Dictionary<string, string>(), "SecretlessProxy", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy");
        return await ExternalClient.CollectAsync(process, TimeSpan.FromSeconds(90), whileRunning);
    }
}
