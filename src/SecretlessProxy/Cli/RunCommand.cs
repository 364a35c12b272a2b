using System.CommandLine;
using SecretlessProxy.Configuration;
using SecretlessProxy.Hosting;

namespace SecretlessProxy.Cli;

/// <summary><c>run --config FILE</c>: run the proxy until Ctrl-C or SIGTERM.</summary>
internal static class RunCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = CliApp.ConfigOption();
        var wrapped = new Argument<string[]>("command")
        {
            Description = "After --: a command to run behind the proxy (HTTP_PROXY, HTTPS_PROXY and a CA bundle set for it).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var command = new Command("run", "Run the proxy with a configuration file, or wrap a command: run --config FILE -- command [args].") { config, wrapped };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var path = parse.GetValue(config)!.FullName;
            var commandLine = parse.GetValue(wrapped) ?? [];
            ProxyApp app;
            try
            {
                if (commandLine.Length > 0)
                {
                    return await CommandWrapper.RunAsync(path, commandLine, error).ConfigureAwait(false);
                }

                app = await ProxyApp.StartAsync(path, new ProxyAppOptions { OwnsProcess = true }, cancellationToken).ConfigureAwait(false);
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
