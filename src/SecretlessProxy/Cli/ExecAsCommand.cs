using System.CommandLine;
using System.Runtime.InteropServices;

namespace SecretlessProxy.Cli;

/// <summary>
/// <c>exec-as --uid U --gid G [--unreadable FILE]... -- command [args]</c>, hidden and internal:
/// the step between the proxy and a wrapped command. .NET cannot change a child's user, so
/// <see cref="CommandWrapper"/> starts the proxy's own executable with this command. It clears the
/// supplementary groups, sets every gid and uid, sets no_new_privs (no setuid binary can give root
/// back), checks that the drop holds, checks that none of the proxy's secret files opens under the
/// new user, and only then replaces itself with the command (execvp): same pid, stdio and
/// environment, so signals and the exit code reach the wrapper as from a direct child.
/// </summary>
internal static class ExecAsCommand
{
    public const string Name = "exec-as";

    public static Command Create(TextWriter error)
    {
        var uid = new Option<uint>("--uid") { Required = true };
        var gid = new Option<uint>("--gid") { Required = true };
        var unreadable = new Option<string[]>("--unreadable");
        var unset = new Option<string[]>("--unset-env");
        var command = new Argument<string[]>("command") { Arity = ArgumentArity.OneOrMore };
        var exec = new Command(Name, "Internal: run a command as another user (used by run --).") { uid, gid, unreadable, unset, command };
        exec.Hidden = true;
        // Synchronous on purpose: no_new_privs is a per-thread flag, and execve keeps only the calling
        // thread, so the flag must be set on the thread that calls execvp.
        exec.SetAction(parse => Run(parse.GetValue(uid), parse.GetValue(gid), parse.GetValue(unreadable) ?? [], parse.GetValue(unset) ?? [], parse.GetValue(command)!, error));
        return exec;
    }

    private static int Run(uint uid, uint gid, string[] unreadable, string[] unset, string[] command, TextWriter error)
    {
        if (Posix.EffectiveUid != 0)
        {
            return Fail(error, "must start as root to become uid " + uid);
        }

        if (Posix.DropTo(uid, gid) is { } dropFailed)
        {
            return Fail(error, dropFailed);
        }

        if (Posix.Prctl(Posix.PrSetNoNewPrivs, 1) != 0 || Posix.Prctl(Posix.PrGetNoNewPrivs, 0) != 1)
        {
            return Fail(error, "cannot set no_new_privs: " + Marshal.GetPInvokeErrorMessage(Posix.LastError));
        }

        if (Posix.VerifyDropped(uid, gid) is { } notDropped)
        {
            return Fail(error, notDropped);
        }

        // The kernel's own answer, which the wrapper's reading of permission bits cannot give for
        // access control lists or capabilities: if a secret opens now, the command could read it.
        foreach (var file in unreadable)
        {
            if (Opens(file))
            {
                error.WriteLine("secretless-proxy: refusing to start '" + command[0] + "' as uid " + uid + " gid " + gid + ": it could read the secret file '" + file + "'; make it readable by the proxy's user only");
                error.Flush();
                return ExitCodes.SecretReadableByCommand;
            }
        }

        // Variables the wrapper set for this step only (see CommandWrapper): the command gets the
        // environment the wrapper meant for it. unsetenv changes the environ that execvp passes on.
        foreach (var name in unset)
        {
            Posix.UnsetEnvironmentVariable(name);
        }

        error.Flush();
        Posix.ResetSignalsForExec();
        var errno = Posix.ExecVp(command[0], command);

        // Only reached when exec failed.
        const int ENOENT = 2;
        error.WriteLine("secretless-proxy: cannot start '" + command[0] + "': " + Marshal.GetPInvokeErrorMessage(errno));
        error.Flush();
        return errno == ENOENT ? ExitCodes.CommandNotFound : ExitCodes.CommandNotExecutable;
    }

    private static bool Opens(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            return true;
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            // Denied, or not there (nothing to read).
            return false;
        }
    }

    private static int Fail(TextWriter error, string reason)
    {
        error.WriteLine("secretless-proxy: cannot run the command as another user: " + reason);
        error.Flush();
        return ExitCodes.ExecAsFailed;
    }
}
