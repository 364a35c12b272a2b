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
        var command = new Command("run", "Run the proxy with a configuration file.") { config };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var path = parse.GetValue(config)!.FullName;
            ProxyApp app;
            try
            {
                app = await ProxyApp.StartAsync(path, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (InvalidConfigurationException ex)
            {
                await error.WriteLineAsync("secretless-proxy: configuration '" + path + "' is invalid:").ConfigureAwait(false);
                foreach (var e in ex.Errors)
                {
                    await error.WriteLineAsync("  " + e).ConfigureAwait(false);
                }

                return ExitCodes.InvalidConfig;
            }
            catch (IOException ex)
            {
                // Typically an address already in use; the message names the address, nothing secret.
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
