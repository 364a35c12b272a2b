using SecretlessProxy.Cli;

namespace SecretlessProxy.Tests.Cli;

/// <summary>What one in-process CLI invocation printed and returned.</summary>
public sealed record CliResult(int ExitCode, string Output, string Error)
{
    /// <summary>The problem lines ("Key: message") printed under the error header, without indentation.</summary>
    public IReadOnlyList<string> Problems =>
        Error.Split('\n')
            .Select(l => l.TrimEnd('\r'))
            .Where(l => l.StartsWith("  ", StringComparison.Ordinal))
            .Select(l => l.Trim())
            .ToArray();

    public override string ToString() => "exit " + ExitCode + "\nstdout:\n" + Output + "\nstderr:\n" + Error;
}

/// <summary>Runs <c>secretless-proxy</c> in-process with captured output, exactly as a user would invoke it.</summary>
public static class CliRunner
{
    public static async Task<CliResult> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var exit = await CliApp.InvokeAsync(args, output, error, timeout.Token);
        return new CliResult(exit, output.ToString(), error.ToString());
    }

    public static Task<CliResult> ValidateAsync(string configPath) => RunAsync("validate", "--config", configPath);
}
