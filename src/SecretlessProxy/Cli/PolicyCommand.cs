using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using SecretlessProxy.Governance;

namespace SecretlessProxy.Cli;

/// <summary>
/// <c>policy suggest --audit FILE… [--config FILE] [--credential NAME --header NAME [--format F]]</c>:
/// policies that allow exactly the traffic in the audit records, printed as configuration. With
/// <c>--config</c> the whole file is printed with its <c>Policies</c> replaced (and <c>Unmatched</c>
/// back to its default, Deny), ready for <c>validate</c> and a reload.
/// </summary>
internal static class PolicyCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var audit = new Option<FileInfo[]>("--audit") { Description = "Audit files (JSON lines, as Audit:Sink File writes them).", Required = true, Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = true };
        var config = new Option<FileInfo?>("--config", "-c") { Description = "The configuration the traffic ran under: its policies' Credential and Inject are kept, and the whole file is printed with the suggested Policies." };
        var credential = new Option<string?>("--credential") { Description = "The credential for traffic no policy observed (Unmatched Observe or PassThrough)." };
        var header = new Option<string?>("--header") { Description = "With --credential: the header it is injected into." };
        var format = new Option<string>("--format") { Description = "With --header: the header value, {token} for the credential.", DefaultValueFactory = _ => "{token}" };
        var suggest = new Command("suggest", "Print policies that would allow exactly the traffic in the audit records (hosts, ports, methods, path prefixes, callers).") { audit, config, credential, header, format };
        suggest.SetAction(async (parse, cancellationToken) =>
        {
            JsonObject? document = null;
            if (parse.GetValue(config) is { } file)
            {
                try
                {
                    document = JsonNode.Parse(await File.ReadAllTextAsync(file.FullName, cancellationToken).ConfigureAwait(false), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
                {
                    await error.WriteLineAsync("cannot read the configuration '" + file.FullName + "': " + ex.Message).ConfigureAwait(false);
                    return ExitCodes.InvalidConfig;
                }
            }

            JsonObject? fallback = null;
            if (parse.GetValue(credential) is { } name)
            {
                if (parse.GetValue(header) is not { } headerName)
                {
                    await error.WriteLineAsync("--credential needs --header: the header the credential is injected into").ConfigureAwait(false);
                    return ExitCodes.InvalidConfig;
                }

                fallback = new JsonObject { ["Credential"] = name, ["Inject"] = new JsonObject { ["Header"] = headerName, ["Format"] = parse.GetValue(format) } };
            }

            var lines = new List<string>();
            foreach (var path in parse.GetValue(audit)!)
            {
                try
                {
                    lines.AddRange(await File.ReadAllLinesAsync(path.FullName, cancellationToken).ConfigureAwait(false));
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    await error.WriteLineAsync("cannot read the audit file '" + path.FullName + "': " + ex.Message).ConfigureAwait(false);
                    return ExitCodes.Failure;
                }
            }

            var secretless = document?["SecretlessProxy"] as JsonObject;
            var suggestion = PolicySuggester.Suggest(lines, secretless?["Policies"] as JsonObject, fallback);
            foreach (var skipped in suggestion.Skipped)
            {
                await error.WriteLineAsync("not suggested: " + skipped).ConfigureAwait(false);
            }

            JsonObject result;
            if (document is not null && secretless is not null)
            {
                secretless["Policies"] = suggestion.Policies;
                secretless.Remove("Unmatched");
                result = document;
            }
            else
            {
                result = new JsonObject { ["SecretlessProxy"] = new JsonObject { ["Policies"] = suggestion.Policies } };
            }

            await output.WriteLineAsync(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true, TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.Combine() })).ConfigureAwait(false);
            await error.WriteLineAsync(suggestion.Policies.Count + " policies from " + suggestion.Records + " records").ConfigureAwait(false);
            return suggestion.Policies.Count > 0 ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return new Command("policy", "Work with policies.") { suggest };
    }
}
