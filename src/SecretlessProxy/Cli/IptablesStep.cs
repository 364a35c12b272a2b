namespace SecretlessProxy.Cli;

/// <summary>One iptables or ip6tables invocation. For the Add/Delete kinds, <c>Rule</c> is the rule after the <c>-A</c>/<c>-D</c>/<c>-C</c> flag.</summary>
internal sealed record IptablesStep(string Tool, IptablesStepKind Kind, IReadOnlyList<string> Arguments)
{
    /// <summary>The step as a line of POSIX shell that behaves the same (what <c>iptables</c> without <c>--apply</c> prints).</summary>
    public string ToShell()
    {
        var args = string.Join(' ', Arguments);
        return Kind switch
        {
            IptablesStepKind.Run => Tool + " " + args,
            IptablesStepKind.IgnoreFailure => Tool + " " + args + " 2>/dev/null || true",
            IptablesStepKind.AddUnlessPresent => Tool + " " + Replace(args, "-C") + " 2>/dev/null || " + Tool + " " + Replace(args, "-A"),
            _ => "while " + Tool + " " + Replace(args, "-D") + " 2>/dev/null; do :; done",
        };
    }

    /// <summary>The arguments with the rule flag placeholder (<c>{op}</c>) set to <paramref name="flag"/>.</summary>
    public IReadOnlyList<string> With(string flag) => Arguments.Select(a => a == IptablesRules.OperationPlaceholder ? flag : a).ToArray();

    private static string Replace(string args, string flag) => args.Replace(IptablesRules.OperationPlaceholder, flag, StringComparison.Ordinal);
}
