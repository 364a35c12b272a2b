namespace SecretlessProxy.Attestation;

/// <summary>
/// One process that held a caller's socket when it was attested, with what tells later, cheaply,
/// whether it is still that process running that executable: a reused pid has another start time,
/// and exec(2) keeps the pid and the start time but changes the executable.
/// </summary>
/// <param name="Pid">The process.</param>
/// <param name="Fd">Its descriptor for the socket; -1 for a Unix socket peer (SO_PEERCRED names no descriptor).</param>
/// <param name="StartTime">Field 22 of <c>/proc/&lt;pid&gt;/stat</c>: clock ticks after boot at fork(2).</param>
/// <param name="ExecutablePath">What <c>/proc/&lt;pid&gt;/exe</c> read, without the kernel's " (deleted)".</param>
/// <param name="Executable">The identity and version of the file it runs (statx through <c>/proc/&lt;pid&gt;/exe</c>).</param>
internal readonly record struct SocketHolder(int Pid, int Fd, ulong StartTime, string? ExecutablePath, ProcFs.FileStatus Executable)
{
    /// <summary>Runs the same file, at the same path, as <paramref name="other"/> (pids and descriptors aside).</summary>
    public bool RunsSameExecutableAs(SocketHolder other) => ExecutablePath == other.ExecutablePath && Executable == other.Executable;
}
