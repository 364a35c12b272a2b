using System.CommandLine;
using SecretlessProxy.Certificates;
using SecretlessProxy.Configuration;
using SecretlessProxy.Hosting;

namespace SecretlessProxy.Cli;

/// <summary><c>ca export --config FILE</c>: prints the local CA certificate (PEM) for trust bundles; never the key.</summary>
internal static class CaCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = CliApp.ConfigOption();
        var export = new Command("export", "Print the local CA certificate (PEM), creating the CA on first use. The key never leaves its directory.") { config };
        export.SetAction(async (parse, cancellationToken) =>
        {
            var path = parse.GetValue(config)!.FullName;
            using var tokenClient = HttpClients.CreateTokenClient();
            // Secret files need not exist here: exporting the CA must work on a build machine too.
            var result = await new ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(path, checkFiles: false).ConfigureAwait(false);
            if (!result.IsValid)
            {
                await CliApp.WriteErrorsAsync(error, "configuration '" + path + "' is invalid:", result.Errors).ConfigureAwait(false);

                return ExitCodes.InvalidConfig;
            }

            if (result.Snapshot!.LocalCa is not { } settings)
            {
                await error.WriteLineAsync("configuration '" + path + "' has no LocalCa section").ConfigureAwait(false);
                return ExitCodes.InvalidConfig;
            }

            try
            {
                using var ca = LocalCertificateAuthority.FromSettings(settings, TimeProvider.System);
                await output.WriteAsync(ca.ExportCertificatePem() + "\n").ConfigureAwait(false);
                return ExitCodes.Ok;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                await error.WriteLineAsync("cannot load or create the local CA: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Failure;
            }
        });
        return new Command("ca", "Manage the local CA used to intercept HTTPS in forward mode.") { export };
    }
}
