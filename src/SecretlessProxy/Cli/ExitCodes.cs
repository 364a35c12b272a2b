namespace SecretlessProxy.Cli;

internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Something failed at run time (a port in use, an unexpected error).</summary>
    public const int Failure = 1;

    /// <summary>The configuration is invalid; the message names each offending key.</summary>
    public const int InvalidConfig = 2;

    /// <summary>
    /// <c>run --user</c> names another user but the proxy does not run as root, so it cannot switch:
    /// nothing was started.
    /// </summary>
    public const int UserSwitchNotPermitted = 3;

    /// <summary>
    /// <c>run --</c> did not start the command: its user could read a secret file of the proxy (the
    /// message names the file and its key, never its contents).
    /// </summary>
    public const int SecretReadableByCommand = 4;

    /// <summary><c>audit verify</c>: the hash chain breaks (the message names the file and line).</summary>
    public const int AuditChainBroken = 5;

    /// <summary>The wrapper could not become the command's user (as env(1) and nice(1) use 125).</summary>
    public const int ExecAsFailed = 125;

    /// <summary>The command exists but could not be executed (permission), as a shell reports it.</summary>
    public const int CommandNotExecutable = 126;

    /// <summary>The command was not found, as a shell reports it.</summary>
    public const int CommandNotFound = 127;
}
