using System.CommandLine;
using SecretlessProxy.Configuration;
using SecretlessProxy.Hosting;

namespace SecretlessProxy.Cli;

/// <summary>
/// <c>run --config FILE</c>: run the proxy until Ctrl-C or SIGTERM. With <c>[--user UID[:GID]] --
/// command</c>: wrap the command (<see cref="CommandWrapper"/>), under another user when root.
/// </summary>
internal static class RunCommand
{
    public static Command Create(TextWriter output, TextWriter error, bool ownsProcess)
    {
        var config = CliApp.ConfigOption();
        var wrapped = new Argument<string[]>("command")
        {
            Description = "After --: a command to run behind the proxy (HTTP_PROXY, HTTPS_PROXY and a CA bundle set for it).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var user = new Option<string>("--user", "-u")
        {
            Description = "With -- command: the user the command runs as, UID[:GID] or NAME[:GROUP] (supplementary groups cleared). "
                + "Default under root: nobody (65534:65534); otherwise the proxy's own uid. Switching needs root.",
        };
        var command = new Command("run", "Run the proxy with a configuration file, or wrap a command: run --config FILE [--user UID[:GID]] -- command [args].") { config, user, wrapped };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var path = parse.GetValue(config)!.FullName;
            var commandLine = parse.GetValue(wrapped) ?? [];
            ChildUser? childUser = null;
            if (parse.GetValue(user) is { } userText)
            {
                if (commandLine.Length == 0)
                {
                    await error.WriteLineAsync("secretless-proxy: --user applies to a wrapped command: run --config FILE --user UID[:GID] -- command").ConfigureAwait(false);
                    return ExitCodes.Failure;
                }

                if (!ChildUser.TryParse(userText, out var parsed, out var userError))
                {
                    await error.WriteLineAsync("secretless-proxy: " + userError).ConfigureAwait(false);
                    return ExitCodes.Failure;
                }

                childUser = parsed;
            }

            ProxyApp app;
            try
            {
                if (commandLine.Length > 0)
                {
                    return await CommandWrapper.RunAsync(path, commandLine, childUser, ownsProcess, error).ConfigureAwait(false);
                }

                app = await ProxyApp.StartAsync(path, new ProxyAppOptions { OwnsProcess = true, NotDumpable = ownsProcess }, cancellationToken).ConfigureAwait(false);
            }
            catch (InvalidConfigurationException ex)
            {
                await CliApp.WriteErrorsAsync(error, "secretless-proxy: configuration '" + path + "' is invalid:", ex.Errors).ConfigureAwait(false);

                return ExitCodes.InvalidConfig;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // An address already in use, a CA directory that cannot be written: the message names
                // the address or the path, nothing secret.
                await error.WriteLineAsync("secretless-proxy: could not start: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Failure;
            }

            await using (app.ConfigureAwait(false))
            {
                await app.WaitForShutdownAsync(CancellationToken.None).ConfigureAwait(false);
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
