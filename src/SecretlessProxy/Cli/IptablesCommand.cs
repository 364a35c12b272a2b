using System.CommandLine;
using System.Diagnostics;

namespace SecretlessProxy.Cli;

/// <summary>
/// <c>iptables</c>: prints, or with <c>--apply</c> runs, the nat rules that redirect a pod's outbound
/// TCP to a Transparent listener (<see cref="IptablesRules"/>); <c>--remove</c> deletes them, so
/// traffic goes direct again. Meant for an init container with NET_ADMIN, before the app starts.
/// </summary>
internal static class IptablesCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var proxyUid = new Option<int?>("--proxy-uid") { Description = "The uid the proxy runs as; its own connections are never redirected (required unless --remove)." };
        var port = new Option<int>("--port") { Description = "The Transparent listener's port (its Url's port).", DefaultValueFactory = _ => 15001 };
        var redirectPorts = new Option<string>("--redirect-ports") { Description = "Comma-separated destination ports to redirect.", DefaultValueFactory = _ => "80,443" };
        var excludeCidrs = new Option<string>("--exclude-cidrs") { Description = "Comma-separated destination CIDRs that go direct (IPv4 ones in iptables, IPv6 ones in ip6tables)." };
        var ipv6 = new Option<bool>("--ipv6") { Description = "Also write the ip6tables rules (the listener must then accept on [::1] as well)." };
        var remove = new Option<bool>("--remove") { Description = "Delete the rules instead, restoring direct traffic." };
        var apply = new Option<bool>("--apply") { Description = "Run the commands (as root, or with CAP_NET_ADMIN) instead of printing them." };
        var command = new Command("iptables", "Print (or --apply) the iptables nat rules that redirect outbound TCP to a Transparent listener; --remove deletes them.")
        {
            proxyUid, port, redirectPorts, excludeCidrs, ipv6, remove, apply,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            IReadOnlyList<IptablesStep> steps;
            if (parse.GetValue(remove))
            {
                steps = IptablesRules.Remove(parse.GetValue(ipv6));
            }
            else
            {
                var problems = new List<string>();
                var uid = parse.GetValue(proxyUid);
                if (uid is not >= 0)
                {
                    problems.Add("--proxy-uid: " + (uid is null ? "is required: the proxy's own connections must not be redirected back to it" : uid + " is not a uid"));
                }

                var listenerPort = parse.GetValue(port);
                if (listenerPort is < 1 or > 65535)
                {
                    problems.Add("--port: " + listenerPort + " is not a TCP port");
                }

                var ports = IptablesRules.ParsePorts(parse.GetValue(redirectPorts) ?? string.Empty, out var portsError);
                if (ports is null)
                {
                    problems.Add("--redirect-ports: " + portsError);
                }
                else if (ports.Contains(listenerPort))
                {
                    problems.Add("--redirect-ports: includes the listener's own port " + listenerPort);
                }

                var cidrs = IptablesRules.ParseCidrs(parse.GetValue(excludeCidrs) ?? string.Empty, out var cidrError);
                if (cidrs is null)
                {
                    problems.Add("--exclude-cidrs: " + cidrError);
                }

                if (problems.Count > 0)
                {
                    foreach (var problem in problems)
                    {
                        await error.WriteLineAsync("secretless-proxy iptables: " + problem).ConfigureAwait(false);
                    }

                    return ExitCodes.InvalidConfig;
                }

                steps = IptablesRules.Install(new IptablesSettings(uid!.Value, listenerPort, ports!, cidrs!, parse.GetValue(ipv6)));
            }

            if (!parse.GetValue(apply))
            {
                await output.WriteLineAsync("#!/bin/sh\n# secretless-proxy iptables: idempotent; run as root in the pod's network namespace.\nset -e").ConfigureAwait(false);
                foreach (var step in steps)
                {
                    await output.WriteLineAsync(step.ToShell()).ConfigureAwait(false);
                }

                return ExitCodes.Ok;
            }

            foreach (var step in steps)
            {
                await output.WriteLineAsync("+ " + step.ToShell()).ConfigureAwait(false);
                if (await RunStepAsync(step, error, cancellationToken).ConfigureAwait(false) is false)
                {
                    return ExitCodes.Failure;
                }
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Runs one step with its idempotence rule; false (with the tool's message written) when a step that must succeed failed.</summary>
    private static async Task<bool> RunStepAsync(IptablesStep step, TextWriter error, CancellationToken cancellationToken)
    {
        switch (step.Kind)
        {
            case IptablesStepKind.IgnoreFailure:
                await RunAsync(step.Tool, step.Arguments, cancellationToken).ConfigureAwait(false);
                return true;
            case IptablesStepKind.AddUnlessPresent:
                if ((await RunAsync(step.Tool, step.With("-C"), cancellationToken).ConfigureAwait(false)).ExitCode == 0)
                {
                    return true;
                }

                return await MustAsync(step.Tool, step.With("-A"), error, cancellationToken).ConfigureAwait(false);
            case IptablesStepKind.DeleteWhilePresent:
                // Bounded, in case a broken tool reports success without deleting anything.
                for (var i = 0; i < 100 && (await RunAsync(step.Tool, step.With("-D"), cancellationToken).ConfigureAwait(false)).ExitCode == 0; i++)
                {
                }

                return true;
            default:
                return await MustAsync(step.Tool, step.Arguments, error, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<bool> MustAsync(string tool, IReadOnlyList<string> arguments, TextWriter error, CancellationToken cancellationToken)
    {
        var (exitCode, stderr) = await RunAsync(tool, arguments, cancellationToken).ConfigureAwait(false);
        if (exitCode == 0)
        {
            return true;
        }

        await error.WriteLineAsync("secretless-proxy iptables: '" + tool + " " + string.Join(' ', arguments) + "' failed (exit " + exitCode + "): " + stderr.Trim()).ConfigureAwait(false);
        return false;
    }

    private static async Task<(int ExitCode, string Error)> RunAsync(string tool, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            await stdout.ConfigureAwait(false);
            return (process.ExitCode, await stderr.ConfigureAwait(false));
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            // The tool is not installed: as a failed step, with the reason.
            return (127, tool + ": " + ex.Message);
        }
    }
}
