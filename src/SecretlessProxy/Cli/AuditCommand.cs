using System.CommandLine;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Cli;

/// <summary><c>audit verify FILE… [--head HASH]</c>: checks audit files against their hash chain.</summary>
internal static class AuditCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var files = new Argument<FileInfo[]>("files")
        {
            Description = "Audit files, oldest first (audit.jsonl.1 audit.jsonl).",
            Arity = ArgumentArity.OneOrMore,
        };
        var head = new Option<string?>("--head")
        {
            Description = "The chain head the proxy logged when it stopped (or any later head): the last record must hash to it.",
        };
        var verify = new Command("verify", "Check that no audit record was changed, removed, inserted or moved since the proxy wrote it. Exits 5 at the first break, naming the file and line.") { files, head };
        verify.SetAction(async (parse, cancellationToken) =>
        {
            var result = AuditChainVerifier.Verify(parse.GetValue(files)!.Select(f => f.FullName).ToArray(), parse.GetValue(head));
            if (result.Intact)
            {
                await output.WriteLineAsync(result.ToString()).ConfigureAwait(false);
                return ExitCodes.Ok;
            }

            await error.WriteLineAsync(result.ToString()).ConfigureAwait(false);
            return ExitCodes.AuditChainBroken;
        });
        return new Command("audit", "Work with the audit trail the proxy writes (Audit:Sink File or Stdout).") { verify };
    }
}
