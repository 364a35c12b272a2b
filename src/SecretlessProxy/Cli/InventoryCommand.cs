using System.CommandLine;
using System.Text.Json;
using SecretlessProxy.Configuration;
using SecretlessProxy.Governance;
using SecretlessProxy.Hosting;

namespace SecretlessProxy.Cli;

/// <summary>
/// <c>inventory --config FILE [--format table|json|markdown]</c>: every credential of a valid
/// configuration with its issuer, owner, rotation, revocation and reach, widest reach first. The
/// configuration is loaded as <c>validate</c> loads it, nothing is fetched; exit 0, or 2 (with the
/// problems) when it is invalid.
/// </summary>
internal static class InventoryCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = CliApp.ConfigOption();
        var format = new Option<string>("--format", "-f")
        {
            Description = "table (default), json or markdown.",
            DefaultValueFactory = _ => "table",
        };
        format.AcceptOnlyFromAmong("table", "json", "markdown");
        var command = new Command("inventory", "List every credential with its owner, issuer, rotation, revocation and reach (blast radius), widest reach first.") { config, format };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var path = parse.GetValue(config)!.FullName;
            using var tokenClient = HttpClients.CreateTokenClient();
            var result = await new ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(path).ConfigureAwait(false);
            if (!result.IsValid)
            {
                await CliApp.WriteErrorsAsync(error, "configuration '" + path + "' has " + result.Errors.Count + " problem(s):", result.Errors).ConfigureAwait(false);
                return ExitCodes.InvalidConfig;
            }

            var report = CredentialInventory.Build(result.Snapshot!);
            var text = parse.GetValue(format) switch
            {
                "json" => JsonSerializer.Serialize(report, InventoryJsonContext.Default.InventoryReport) + "\n",
                "markdown" => InventoryText.Render(report, markdown: true),
                _ => InventoryText.Render(report, markdown: false),
            };
            await output.WriteAsync(text.AsMemory(), cancellationToken).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return command;
    }
}
