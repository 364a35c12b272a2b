using System.Diagnostics;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>Runs a real, unmodified client program (curl, python3) with an environment of the test's choosing.</summary>
public static class ExternalClient
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public override string ToString() => "exit " + ExitCode + "\nstdout: " + Output + "\nstderr: " + Error;
    }

    public static async Task<Result> RunAsync(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
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

        // Proxy and CA settings come only from the test.
        foreach (var key in start.Environment.Keys.Where(k => k.EndsWith("_proxy", StringComparison.OrdinalIgnoreCase) || k.EndsWith("_CA_BUNDLE", StringComparison.Ordinal) || k == "SSL_CERT_FILE").ToArray())
        {
            start.Environment.Remove(key);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        return await CollectAsync(process, TimeSpan.FromSeconds(60));
    }

    /// <summary>Reads a started process's output to the end, killing it if it outlives the bound.</summary>
    public static async Task<Result> CollectAsync(Process process, TimeSpan bound, Func<Process, Task>? whileRunning = null)
    {
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (whileRunning is not null)
        {
            await whileRunning(process);
        }

        using var timeout = new CancellationTokenSource(bound);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }
}
