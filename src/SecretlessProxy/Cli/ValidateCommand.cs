using System.CommandLine;
using SecretlessProxy.Configuration;
using SecretlessProxy.Hosting;

namespace SecretlessProxy.Cli;

/// <summary>
/// <c>validate --config FILE</c>: schema and semantic checks; prints every problem; exit 0 or 2. A
/// valid configuration may still print warnings (issuers reached with AllowLoopbackSquatting or
/// plain http; secret files other users can read), which do not change the exit code.
/// </summary>
internal static class ValidateCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = CliApp.ConfigOption();
        var command = new Command("validate", "Check a configuration file and print what is wrong with it.") { config };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var path = parse.GetValue(config)!.FullName;
            using var tokenClient = HttpClients.CreateTokenClient();
            var result = await new ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(path).ConfigureAwait(false);
            if (result.IsValid)
            {
                var s = result.Snapshot!;
                await output.WriteLineAsync(
                    "configuration '" + path + "' is valid: " + s.Listeners.Count + " listener(s), " + s.Policies.Policies.Count + " polic(ies), " + s.Credentials.Count + " credential(s)").ConfigureAwait(false);

                // Valid, and still worth a second look: each names the key and what is at stake.
                foreach (var warning in IssuerEndpointWarnings.Of(s))
                {
                    await error.WriteLineAsync("warning: " + warning).ConfigureAwait(false);
                }
                // Valid, but a secret that other users can read is a secret the app's user may read too.
                foreach (var secret in s.SecretFiles)
                {
                    if (SecretFileAccess.ReadableByOthers(secret.Path) is { } reason)
                    {
                        await error.WriteLineAsync("warning: " + secret.Key + ": secret file '" + secret.Path + "' is readable by others (" + reason + "); make it readable by the proxy's user only (chmod 600)").ConfigureAwait(false);
                    }
                }

                return ExitCodes.Ok;
            }

            await CliApp.WriteErrorsAsync(error, "configuration '" + path + "' has " + result.Errors.Count + " problem(s):", result.Errors).ConfigureAwait(false);

            return ExitCodes.InvalidConfig;
        });
        return command;
    }
}
