namespace SecretlessProxy.Core;

/// <summary>
/// The local process on the other end of a connection, as the kernel reports it: never anything the
/// client said about itself. Resolved once per connection. <see cref="Unknown"/> when the process
/// cannot be found (another pod's process, no permission to read its /proc entries, a non-loopback
/// peer); only policies that do not constrain the caller can match an unknown caller.
/// </summary>
internal sealed class Caller
{
    public static readonly Caller Unknown = new(isKnown: false, uid: null, pid: null, executable: null, executableSha256: null, containerId: null, cgroup: null);

    public Caller(bool isKnown, int? uid, int? pid, string? executable, string? executableSha256, string? containerId, string? cgroup)
    {
        IsKnown = isKnown;
        Uid = uid;
        Pid = pid;
        Executable = executable;
        ExecutableSha256 = executableSha256;
        ContainerId = containerId;
        Cgroup = cgroup;
    }

    /// <summary>True when at least the uid was resolved.</summary>
    public bool IsKnown { get; }

    /// <summary>Owner uid of the socket (TCP) or the peer's uid (SO_PEERCRED).</summary>
    public int? Uid { get; }

    public int? Pid { get; }

    /// <summary>Absolute path of the executable (<c>/proc/&lt;pid&gt;/exe</c>).</summary>
    public string? Executable { get; }

    /// <summary>Lower-case hex SHA-256 of the executable's bytes.</summary>
    public string? ExecutableSha256 { get; }

    /// <summary>The container id from the process's cgroup path, where it has one.</summary>
    public string? ContainerId { get; }

    /// <summary>The process's cgroup v2 path (or the first v1 path), where readable.</summary>
    public string? Cgroup { get; }

    public override string ToString() => IsKnown
        ? "uid=" + Uid + " pid=" + (Pid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?") + " exe=" + (Executable ?? "?")
        : "unknown";
}
