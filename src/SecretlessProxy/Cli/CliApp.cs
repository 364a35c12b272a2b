using System.CommandLine;

namespace SecretlessProxy.Cli;

/// <summary>The <c>secretless-proxy</c> command line: run, validate, demo.</summary>
internal static class CliApp
{
    /// <param name="ownsProcess">
    /// The CLI is the process (Program), not a guest in a test host: <c>run</c> may then change
    /// process-wide state, such as marking the process not dumpable.
    /// </param>
    public static RootCommand Create(TextWriter output, TextWriter error, bool ownsProcess = false)
    {
        var root = new RootCommand("SecretlessProxy: a sidecar that injects just-in-time credentials so the app never holds a secret.");
        root.Subcommands.Add(RunCommand.Create(output, error, ownsProcess));
        root.Subcommands.Add(ValidateCommand.Create(output, error));
        root.Subcommands.Add(InventoryCommand.Create(output, error));
        root.Subcommands.Add(DemoCommand.Create(output, error));
        root.Subcommands.Add(CaCommand.Create(output, error));
        root.Subcommands.Add(IptablesCommand.Create(output, error));
        root.Subcommands.Add(ExecAsCommand.Create(error));
        root.Subcommands.Add(AuditCommand.Create(output, error));
        root.Subcommands.Add(PolicyCommand.Create(output, error));
        root.Subcommands.Add(Webhook.WebhookCommand.Create(output, error));
        return root;
    }

    public static Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default, bool ownsProcess = false)
    {
        var parse = Create(output, error, ownsProcess).Parse(args);
        // `run` handles SIGTERM and Ctrl-C itself (the host drains for Shutdown:DrainTimeout; a
        // wrapped command is left to stop on its own terms). System.CommandLine's handler would
        // end the process two seconds after the signal, cutting the drain short.
        var ownsSignals = parse.CommandResult.Command.Name == "run";
        var invocation = new InvocationConfiguration { Output = output, Error = error };
        if (ownsSignals)
        {
            invocation.ProcessTerminationTimeout = null;
        }

        return parse.InvokeAsync(invocation, cancellationToken);
    }

    /// <summary>Prints each configuration problem as "Key: message", one per line, after a heading.</summary>
    internal static async Task WriteErrorsAsync(TextWriter error, string heading, IEnumerable<SecretlessProxy.Core.ConfigError> errors)
    {
        await error.WriteLineAsync(heading).ConfigureAwait(false);
        foreach (var e in errors)
        {
            await error.WriteLineAsync("  " + e).ConfigureAwait(false);
        }
    }

    internal static Option<FileInfo> ConfigOption() => new("--config", "-c")
    {
        Description = "Path to the JSON configuration file (see appsettings.schema.json).",
        Required = true,
    };
}
