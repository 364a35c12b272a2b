using System.CommandLine;
using SecretlessProxy.Demo;

namespace SecretlessProxy.Cli;

/// <summary><c>demo</c>: the newcomer's first command; everything embedded, all on loopback.</summary>
internal static class DemoCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var once = new Option<bool>("--exit") { Description = "Exit after the demo calls instead of waiting for Ctrl-C." };
        var command = new Command("demo", "Start a proxy with a demo API and token endpoint, send a few calls that carry no secret, and show what the API received.") { once };
        command.SetAction((parse, cancellationToken) => new DemoRunner(output).RunAsync(parse.GetValue(once), cancellationToken));
        return command;
    }
}
