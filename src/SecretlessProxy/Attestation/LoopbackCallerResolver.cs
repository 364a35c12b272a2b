using System.Buffers.Text;
using System.IO.Enumeration;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Attestation;

/// <summary>
/// Finds which local process is on the other end of a connection from what the kernel reports
/// (socket tables, SO_PEERCRED, /proc), never from what the client says. Attests a connection
/// once (at accept when a policy has a Caller condition) and re-checks that answer cheaply on
/// each request (<see cref="Recheck"/>); thread-safe.
/// </summary>
/// <remarks>
/// TCP: the client's socket is the row of <c>/proc/net/tcp[6]</c> whose local endpoint is the
/// connection's remote one and vice versa; the row gives its owner uid and inode. It is there when
/// Kestrel accepts: the kernel completes the handshake, so both ends are ESTABLISHED, before
/// accept(2) returns. The process is the one with a <c>/proc/&lt;pid&gt;/fd/*</c> link to
/// <c>socket:[inode]</c>; the kernel keeps no index from socket to process, so the resolver scans,
/// the socket owner's processes first, within a time and count bound. Where it cannot see the
/// process (another pid namespace, another uid without CAP_SYS_PTRACE, the bound reached) the
/// caller is the uid alone.
/// </remarks>
internal sealed partial class LoopbackCallerResolver
{
    // Bound on the number of processes whose descriptors one resolution reads. With the time
    // bound (ScanBudget) it keeps a busy host's first request from waiting long: there, an
    // unresolved pid (the caller is its uid alone) is preferred to a slow connection. The time
    // bound is generous (ScanBudget, paid once per connection) because a caller resolved to its
    // uid alone fails every Executables/ExecutableSha256 condition, and a scan slows down many
    // times over when the host's cores are busy.
    private const int MaxProcessesScanned = 2048;

    private const string DeletedSuffix = " (deleted)";
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    private readonly TimeProvider _time;
    private readonly ILogger<LoopbackCallerResolver> _logger;
    private readonly string _procRoot;
    private readonly byte[] _procRootUtf8;
    private readonly ExecutableHashCache _hashes = new();
    private readonly uint? _selfUid;
    private readonly ScanCoalescer<ulong, DescriptorTable> _descriptorPasses;

    public LoopbackCallerResolver(TimeProvider time, ILogger<LoopbackCallerResolver> logger, string procRoot = "/proc")
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentException.ThrowIfNullOrEmpty(procRoot);
        _time = time;
        _logger = logger;
        _procRoot = procRoot.TrimEnd('/');
        _procRootUtf8 = System.Text.Encoding.UTF8.GetBytes(_procRoot);

        // /proc/self belongs to this process's uid: the uid its own sockets get.
        _selfUid = ProcFs.TryStat(_procRoot + "/self", followLinks: true, out var self) ? self.Uid : null;
        _descriptorPasses = new ScanCoalescer<ulong, DescriptorTable>(ScanAllDescriptors, "caller scan");
    }

    /// <summary>How many coalesced descriptor passes <see cref="AttestTcpAsync"/> ran. For tests.</summary>
    internal long DescriptorPasses => _descriptorPasses.Passes;

    /// <summary>
    /// How long one resolution may spend looking for the process that holds a socket. A pod has
    /// tens of processes, read in a few milliseconds; settable for tests on loaded machines.
    /// </summary>
    internal TimeSpan ScanBudget { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How many executables were read and hashed (hash cache misses). For tests.</summary>
    internal long HashesComputed => _hashes.HashesComputed;

    /// <summary>
    /// The process behind a TCP connection the proxy accepted: <paramref name="remote"/> is the
    /// client's endpoint, <paramref name="local"/> the proxy's. <see cref="Caller.Unknown"/> unless
    /// the client is on loopback (127.0.0.0/8, ::1, or those as IPv4-mapped addresses) and its
    /// socket is in this network namespace.
    /// </summary>
    public Caller ResolveTcp(IPEndPoint remote, IPEndPoint local) => AttestTcp(remote, local).Caller;

    /// <summary>
    /// As <see cref="ResolveTcp"/>, with every process that held the socket, for
    /// <see cref="Recheck"/> on each later request.
    /// </summary>
    internal CallerAttestation AttestTcp(IPEndPoint remote, IPEndPoint local) =>
        FindClientSocket(remote, local, out var socket) ?? Logged(socket.Uid, AttestSocket(socket.Uid, socket.Inode));

    /// <summary>
    /// As <see cref="AttestTcp"/>, with the descriptor scan shared: connections attested together
    /// wait for one pass over every process's descriptors (the first to start after they asked),
    /// run on a thread of its own, instead of one scan each on the thread pool.
    /// </summary>
    internal async Task<CallerAttestation> AttestTcpAsync(IPEndPoint remote, IPEndPoint local)
    {
        if (FindClientSocket(remote, local, out var socket) is { } unknown)
        {
            return unknown;
        }

        var table = await _descriptorPasses.NextAsync(socket.Inode, includeSelf: _selfUid == (uint)socket.Uid).ConfigureAwait(false);
        return Logged(socket.Uid, AttestHolders(socket.Uid, socket.Inode, table.HoldersOf(socket.Uid, socket.Inode, _selfUid)));
    }

    /// <summary>
    /// The client's socket (its local endpoint is our remote one) in <paramref name="socket"/>, and
    /// null; or, when there is none to look for holders of, the unknown caller (logged).
    /// </summary>
    private CallerAttestation? FindClientSocket(IPEndPoint remote, IPEndPoint local, out ProcNetTcp.SocketRow socket)
    {
        ArgumentNullException.ThrowIfNull(remote);
        ArgumentNullException.ThrowIfNull(local);
        socket = default;
        string reason;
        if (!Loopback.IsLoopback(remote.Address))
        {
            reason = Reasons.NotLoopback;
        }
        else if (TcpSocketLookup.Find(_procRoot, socketLocal: remote, socketRemote: local) is not { } row)
        {
            reason = Reasons.NoSocketRow;
        }
        else if (row.Inode == 0)
        {
            reason = Reasons.SocketOwnerless;
        }
        else
        {
            socket = row;
            return null;
        }

        Log.CallerUnresolved(_logger, reason, null, 0);
        return CallerAttestation.Fixed(Caller.Unknown);
    }

    /// <summary>A TCP attestation's outcome, logged: resolved, or the reason it is the uid alone.</summary>
    private CallerAttestation Logged(int uid, (CallerAttestation Attestation, string? Failure, int Examined) result)
    {
        if (result.Failure is not null)
        {
            Log.CallerUnresolved(_logger, result.Failure, uid, result.Examined);
        }
        else
        {
            Log.CallerResolved(_logger, uid, result.Attestation.Caller.Pid!.Value, result.Attestation.Caller.Executable);
        }

        return result.Attestation;
    }

    /// <summary>
    /// The caller now, checked against <paramref name="attested"/>: the same object when every
    /// process that held the socket still holds it, has the same start time and runs the same
    /// executable (a few reads of /proc per holder, no scan). Otherwise the socket's holders are
    /// scanned for again: when they all run the executable attested, the answer is theirs; when
    /// they run another, none is visible, or the scan is bounded, the caller is its uid alone for
    /// the rest of the connection (logged once, as a warning).
    /// </summary>
    /// <remarks>
    /// This catches a connection handed to another program after it was attested: the holder
    /// exec(2)s another binary, or passes the socket on (SCM_RIGHTS, fork) and closes its own, or
    /// exits and its pid is reused. It cannot catch a process that keeps the socket out of every
    /// descriptor table (in flight in a Unix socket's queue) whenever the proxy looks, and takes
    /// it back to write: the kernel says nothing about who wrote the bytes on a TCP socket. A new
    /// holder beside ones still there is not looked for per request either, as it could hide the
    /// same way. What the Executables conditions guarantee therefore rests on uid separation
    /// (see <c>CallerCondition</c>).
    /// </remarks>
    internal CallerAttestation Recheck(CallerAttestation attested)
    {
        ArgumentNullException.ThrowIfNull(attested);
        if (attested.Holders is not { } holders)
        {
            return attested;
        }

        foreach (var holder in holders)
        {
            if (!IsUnchanged(holder, attested.SocketInode))
            {
                return Rescan(attested);
            }
        }

        return attested;
    }

    private CallerAttestation Rescan(CallerAttestation attested)
    {
        var uid = attested.Uid;
        var holders = attested.Holders!;
        if (attested.SocketInode == 0)
        {
            // A Unix socket peer: SO_PEERCRED named one process, and it is no longer that one.
            Log.CallerChanged(_logger, Reasons.PeerChanged, uid, holders[0].ExecutablePath, null);
            return CallerAttestation.Fixed(UidOnly(uid));
        }

        var (now, failure, _) = AttestSocket(uid, attested.SocketInode);
        if (failure is not null)
        {
            Log.CallerChanged(_logger, failure, uid, holders[0].ExecutablePath, null);
            return CallerAttestation.Fixed(UidOnly(uid));
        }

        // All holders of each attestation run one executable (AttestSocket checks): comparing one
        // of each compares them all. Pids may differ (the holder forked and exited): same program.
        if (!now.Holders![0].RunsSameExecutableAs(holders[0]))
        {
            Log.CallerChanged(_logger, Reasons.HolderChanged, uid, holders[0].ExecutablePath, now.Holders[0].ExecutablePath);
            return CallerAttestation.Fixed(UidOnly(uid));
        }

        return now;
    }

    /// <summary>Every holder of the socket, described; or the uid alone with the reason.</summary>
    private (CallerAttestation Attestation, string? Failure, int Examined) AttestSocket(int uid, ulong inode) =>
        AttestHolders(uid, inode, FindSocketHolders(uid, inode));

    /// <summary>The holders a scan found, described; or the uid alone with the reason.</summary>
    private (CallerAttestation Attestation, string? Failure, int Examined) AttestHolders(int uid, ulong inode, ScanResult scan)
    {
        if (scan.BoundReached || scan.Holders.Count == 0)
        {
            // A bounded scan cannot rule out a second holder running something else: uid only.
            return (CallerAttestation.Fixed(UidOnly(uid)), scan.BoundReached ? Reasons.ScanBounded : Reasons.NoHolderVisible, scan.Examined);
        }

        // Every process holding the socket could be the one writing to it (a fork keeps the
        // socket, then the parent execs an allowed binary): they must all run the same bytes.
        Caller? caller = null;
        var holders = new List<SocketHolder>(scan.Holders.Count);
        foreach (var (pid, fd) in scan.Holders)
        {
            var startTime = ReadStartTime(pid);
            var described = Describe(uid, pid, out var executable);

            // The pid was read before the executable; if the process exited in between, its pid
            // may now name another process. It still holding the socket, with the start time read
            // before, rules that out; an exec(2) meanwhile shows as a changed executable.
            if (startTime is not { } started || described is null || !HoldsSocket(pid, fd, inode) || ReadStartTime(pid) != started)
            {
                return (CallerAttestation.Fixed(UidOnly(uid)), Reasons.ProcessExited, scan.Examined);
            }

            var holder = new SocketHolder(pid, fd, started, described.Executable, executable);
            if (caller is null)
            {
                caller = described;
            }
            else if (!holder.RunsSameExecutableAs(holders[0]) || described.ExecutableSha256 != caller.ExecutableSha256)
            {
                return (CallerAttestation.Fixed(UidOnly(uid)), Reasons.SharedByDifferentExecutables, scan.Examined);
            }

            holders.Add(holder);
        }

        return (new CallerAttestation(caller!, uid, inode, holders), null, scan.Examined);
    }

    /// <summary>The holder still holds the socket (TCP), has the same start time and runs the same file at the same path.</summary>
    private bool IsUnchanged(SocketHolder holder, ulong inode)
    {
        if (holder.Fd >= 0 && !HoldsSocket(holder.Pid, holder.Fd, inode))
        {
            return false;
        }

        var exeLink = ProcDirectory(holder.Pid) + "/exe";
        return ReadStartTime(holder.Pid) == holder.StartTime
            && ProcFs.TryStat(exeLink, followLinks: true, out var executable) && executable == holder.Executable
            && ReadExecutablePath(exeLink) == holder.ExecutablePath;
    }

    /// <summary>
    /// The process on the other end of a connected Unix domain socket, from SO_PEERCRED: the
    /// credentials the peer had when it called connect(2) (or socketpair(2)).
    /// </summary>
    /// <remarks>
    /// The pid is as the peer had it at connect time; if that process has since exited and its pid
    /// was reused, the executable is the new process's. (SO_PEERPIDFD, Linux 6.5, would close that
    /// window.) A peer in another pid namespace has pid 0 here: the caller is its uid alone.
    /// </remarks>
    public Caller ResolveUnixPeer(Socket socket) => AttestUnixPeer(socket).Caller;

    /// <summary>
    /// As <see cref="ResolveUnixPeer"/>, with the peer process's start time and executable, for
    /// <see cref="Recheck"/>: a peer that exec(2)s another binary after connecting, or exits, is
    /// its uid alone from then on. Other processes holding the peer's end are not looked for.
    /// </summary>
    internal CallerAttestation AttestUnixPeer(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);

        // SO_PEERCRED on other socket kinds "succeeds" with the overflow uid (65534): not a peer.
        if (socket.AddressFamily != AddressFamily.Unix)
        {
            Log.CallerUnresolved(_logger, Reasons.NotUnixSocket, null, 0);
            return CallerAttestation.Fixed(Caller.Unknown);
        }

        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } in host byte order.
        Span<byte> credentials = stackalloc byte[12];
        int length;
        try
        {
            length = socket.GetRawSocketOption(SolSocket, SoPeerCred, credentials);
        }
        catch (SocketException)
        {
            length = 0;
        }

        if (length < credentials.Length)
        {
            Log.CallerUnresolved(_logger, Reasons.PeerCredFailed, null, 0);
            return CallerAttestation.Fixed(Caller.Unknown);
        }

        var pid = MemoryMarshal.Read<int>(credentials);
        var uid = MemoryMarshal.Read<uint>(credentials[4..]);
        if (uid > int.MaxValue)
        {
            Log.CallerUnresolved(_logger, Reasons.PeerCredFailed, null, 0);
            return CallerAttestation.Fixed(Caller.Unknown);
        }

        if (pid <= 0)
        {
            Log.CallerUnresolved(_logger, Reasons.PidNotVisible, (int)uid, 0);
            return CallerAttestation.Fixed(UidOnly((int)uid));
        }

        var startTime = ReadStartTime(pid);
        var caller = Describe((int)uid, pid, out var executable);
        if (startTime is not { } started || caller is null || ReadStartTime(pid) != started)
        {
            Log.CallerUnresolved(_logger, Reasons.ProcessExited, (int)uid, 0);
            return CallerAttestation.Fixed(UidOnly((int)uid));
        }

        Log.CallerResolved(_logger, (int)uid, pid, caller.Executable);
        return new CallerAttestation(caller, (int)uid, 0, [new SocketHolder(pid, -1, started, caller.Executable, executable)]);
    }

    /// <summary>
    /// The cgroup path (the v2 one, else the first v1 one) and the container id in it, from the
    /// text of <c>/proc/&lt;pid&gt;/cgroup</c> (lines <c>hierarchy-id:controllers:path</c>).
    /// </summary>
    internal static (string? Cgroup, string? ContainerId) ParseCgroup(string text)
    {
        string? unified = null;
        string? firstV1 = null;
        string? containerId = null;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var first = line.IndexOf(':');
            var second = first < 0 ? -1 : line.IndexOf(':', first + 1);
            if (second < 0)
            {
                continue;
            }

            var path = line[(second + 1)..];
            if (line.AsSpan(0, first) is "0" && second == first + 1)
            {
                unified = path;
                containerId = ContainerIdIn(path) ?? containerId; // the v2 path wins
            }
            else
            {
                firstV1 ??= path;
                containerId ??= ContainerIdIn(path);
            }
        }

        return (unified ?? firstV1, containerId);
    }

    /// <summary>
    /// The innermost path segment that names a container: 64 lower-case hex digits, alone
    /// (<c>/docker/&lt;id&gt;</c>, <c>/kubepods/.../&lt;id&gt;</c>) or after a runtime prefix and
    /// before <c>.scope</c> (<c>docker-&lt;id&gt;.scope</c>, <c>cri-containerd-&lt;id&gt;.scope</c>,
    /// <c>crio-&lt;id&gt;.scope</c>, <c>libpod-&lt;id&gt;.scope</c>).
    /// </summary>
    private static string? ContainerIdIn(string path)
    {
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = segments.Length - 1; i >= 0; i--)
        {
            var segment = segments[i].AsSpan();
            if (segment.EndsWith(".scope", StringComparison.Ordinal))
            {
                segment = segment[..^".scope".Length];
            }

            var id = segment[(segment.LastIndexOf('-') + 1)..];
            if (id.Length == 64 && !id.ContainsAnyExcept("0123456789abcdef"))
            {
                return id.ToString();
            }
        }

        return null;
    }

    private static Caller UidOnly(int uid) => new(isKnown: true, uid: uid, pid: null, executable: null, executableSha256: null, containerId: null, cgroup: null);

    private string ProcDirectory(int pid) => _procRoot + "/" + pid.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Executable, its hash and cgroup of a process, and the identity of the file it runs; null
    /// when the executable cannot be read or changed while it was read (an exec(2) in between).
    /// </summary>
    private Caller? Describe(int uid, int pid, out ProcFs.FileStatus executableFile)
    {
        var procDirectory = ProcDirectory(pid);
        var exeLink = procDirectory + "/exe";

        // The file first, then its path and its bytes: an exec(2) between two of these reads shows
        // as a hashed file other than the one stat'ed, and a later Recheck compares the file.
        var executable = ProcFs.TryStat(exeLink, followLinks: true, out executableFile) ? ReadExecutablePath(exeLink) : null;
        if (executable is null)
        {
            return null;
        }

        var sha256 = _hashes.GetSha256(exeLink, out var hashed);
        if (sha256 is not null && hashed != executableFile)
        {
            return null;
        }

        string? cgroup = null;
        string? containerId = null;
        try
        {
            (cgroup, containerId) = ParseCgroup(File.ReadAllText(procDirectory + "/cgroup"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The process exited, or /proc is mounted with hidepid.
        }

        return new Caller(isKnown: true, uid, pid, executable, sha256, containerId, cgroup);
    }

    /// <summary>
    /// The target of <c>/proc/&lt;pid&gt;/exe</c>. A binary replaced or removed since it started
    /// reads as "&lt;path&gt; (deleted)": the path without the suffix (its hash is still of the
    /// bytes running, read through the link).
    /// </summary>
    private static string? ReadExecutablePath(string exeLink)
    {
        var executable = ProcFs.ReadLink(exeLink);
        return executable is not null && executable.EndsWith(DeletedSuffix, StringComparison.Ordinal)
            ? executable[..^DeletedSuffix.Length]
            : executable;
    }

    /// <summary>
    /// Field 22 of <c>/proc/&lt;pid&gt;/stat</c>, the process's start time (clock ticks after
    /// boot), or null when the process is gone. Fields are counted after the last ')': the second
    /// field, the command name in parentheses, may itself contain spaces and parentheses.
    /// </summary>
    internal ulong? ReadStartTime(int pid)
    {
        Span<byte> stat = stackalloc byte[2048];
        int length;
        try
        {
            using var file = File.OpenHandle(ProcDirectory(pid) + "/stat", FileMode.Open, FileAccess.Read);
            length = RandomAccess.Read(file, stat, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return ParseStartTime(stat[..length]);
    }

    internal static ulong? ParseStartTime(ReadOnlySpan<byte> stat)
    {
        var close = stat.LastIndexOf((byte)')');
        if (close < 0)
        {
            return null;
        }

        // After ") ": field 3 (state) is the first; field 22 is the twentieth.
        var rest = stat[(close + 1)..];
        for (var field = 3; field < 22; field++)
        {
            rest = rest.TrimStart((byte)' ');
            var space = rest.IndexOf((byte)' ');
            if (space < 0)
            {
                return null;
            }

            rest = rest[space..];
        }

        rest = rest.TrimStart((byte)' ');
        return Utf8Parser.TryParse(rest, out ulong startTime, out _) ? startTime : null;
    }

    /// <summary>
    /// Every process with a descriptor for socket <paramref name="inode"/>. The socket owner's
    /// processes (/proc/&lt;pid&gt; belongs to the process's uid) are scanned first, then the rest,
    /// both in ascending pid order, and this process last.
    /// </summary>
    /// <remarks>
    /// Several processes hold one socket after fork(2). Without exec(2) they run the same
    /// executable. A socket kept across exec(2), or a parent that execs an allowed binary after
    /// forking a child that keeps the socket, makes holders that run different binaries; any of
    /// them could be the one writing, so the caller then is its uid alone (ResolveTcp checks that
    /// all holders agree). The whole table is scanned for that reason, not just to the first
    /// holder. The proxy's own process holds the server end of every connection, so its
    /// descriptors are the most numerous and the least likely to hold a client socket: it is read
    /// last, and only for a socket of its own uid (which a client of another uid, the usual case
    /// in a pod, never has).
    /// </remarks>
    private ScanResult FindSocketHolders(int uid, ulong inode)
    {
        var started = _time.GetTimestamp();
        Span<byte> target = stackalloc byte[40];
        "socket:["u8.CopyTo(target);
        Utf8Formatter.TryFormat(inode, target[8..], out var digits);
        target[8 + digits] = (byte)']';
        target = target[..(9 + digits)];

        var self = Environment.ProcessId;
        var processes = OtherProcesses(self);
        var owned = processes.Where(p => p.Uid == (uint)uid).Select(p => p.Pid).ToList();
        var others = processes.Where(p => p.Uid != (uint)uid).Select(p => p.Pid).ToList();
        var examined = 0;
        var holders = new List<(int Pid, int Fd)>(1);
        List<int>[] groups = _selfUid == (uint)uid ? [owned, others, [self]] : [owned, others];
        foreach (var candidates in groups)
        {
            foreach (var pid in candidates)
            {
                if (examined >= MaxProcessesScanned || _time.GetElapsedTime(started) > ScanBudget)
                {
                    return new ScanResult(holders, examined, BoundReached: true);
                }

                examined++;
                if (FindDescriptor(pid, target) is var fd and >= 0)
                {
                    holders.Add((pid, fd));
                }
            }
        }

        // Lowest pid first within each group: the oldest holder is described first.
        return new ScanResult(holders, examined, BoundReached: false);
    }

    private readonly record struct ScanResult(List<(int Pid, int Fd)> Holders, int Examined, bool BoundReached);

    /// <summary>Every visible process but <paramref name="self"/>, with the uid /proc/&lt;pid&gt; belongs to, in ascending pid order.</summary>
    private List<(int Pid, uint Uid)> OtherProcesses(int self)
    {
        var processes = new List<(int Pid, uint Uid)>();
        foreach (var pid in EnumeratePids())
        {
            if (pid != self && ProcFs.TryStat(_procRoot + "/" + pid.ToString(System.Globalization.CultureInfo.InvariantCulture), followLinks: false, out var status))
            {
                processes.Add((pid, status.Uid));
            }
        }

        processes.Sort();
        return processes;
    }

    /// <summary>
    /// One pass over every visible process's descriptors (this process's last, when asked), within
    /// the same bounds as <see cref="FindSocketHolders"/>: who holds each of the <paramref name="wanted"/>
    /// sockets, to answer for all of them at once.
    /// </summary>
    private DescriptorTable ScanAllDescriptors(bool includeSelf, IReadOnlySet<ulong> wanted)
    {
        var started = _time.GetTimestamp();
        var self = Environment.ProcessId;
        var table = new DescriptorTable(self);
        var pids = new List<int>();
        foreach (var (pid, uid) in OtherProcesses(self))
        {
            table.Owners[pid] = uid;
            pids.Add(pid);
        }

        if (includeSelf && _selfUid is { } selfUid)
        {
            table.Owners[self] = selfUid;
            pids.Add(self);
        }

        foreach (var pid in pids)
        {
            if (table.Examined >= MaxProcessesScanned || _time.GetElapsedTime(started) > ScanBudget)
            {
                table.BoundReached = true;
                break;
            }

            table.Examined++;
            ReadSocketDescriptors(pid, wanted, table);
        }

        return table;
    }

    /// <summary>Adds each wanted socket <paramref name="pid"/> holds to <paramref name="table"/> (its first descriptor for each).</summary>
    private void ReadSocketDescriptors(int pid, IReadOnlySet<ulong> wanted, DescriptorTable table)
    {
        Span<byte> path = stackalloc byte[_procRootUtf8.Length + 48];
        Span<byte> link = stackalloc byte[64];
        foreach (var fd in DescriptorNumbers(pid, path, link))
        {
            var length = ProcFs.ReadLink(ProcPath(path, pid, "/fd/"u8, fd), link);
            if (length > 9 && link[..8].SequenceEqual("socket:["u8) && link[length - 1] == (byte)']' &&
                Utf8Parser.TryParse(link[8..(length - 1)], out ulong inode, out var consumed) && consumed == length - 9 && wanted.Contains(inode))
            {
                table.Add(inode, pid, fd);
            }
        }
    }

    /// <summary>What one pass saw: each socket inode's holders, each process's owner, and whether a bound cut it short.</summary>
    private sealed class DescriptorTable(int self)
    {
        private readonly Dictionary<ulong, List<(int Pid, int Fd)>> _holders = [];

        public Dictionary<int, uint> Owners { get; } = [];

        public int Examined { get; set; }

        public bool BoundReached { get; set; }

        public void Add(ulong inode, int pid, int fd)
        {
            if (!_holders.TryGetValue(inode, out var holders))
            {
                _holders[inode] = holders = new List<(int Pid, int Fd)>(1);
            }

            if (holders.Count == 0 || holders[^1].Pid != pid)
            {
                holders.Add((pid, fd));
            }
        }

        /// <summary>
        /// The holders of <paramref name="inode"/> as <see cref="FindSocketHolders"/> orders them for
        /// a socket of <paramref name="uid"/>: the uid's processes first, then the rest, ascending pid,
        /// this process last and only for a socket of its own uid.
        /// </summary>
        public ScanResult HoldersOf(int uid, ulong inode, uint? selfUid)
        {
            if (BoundReached)
            {
                return new ScanResult([], Examined, BoundReached: true);
            }

            var found = _holders.TryGetValue(inode, out var all) ? all : [];
            var holders = found
                .Where(h => h.Pid != self || selfUid == (uint)uid)
                .OrderBy(h => h.Pid == self ? 2 : Owners.GetValueOrDefault(h.Pid) == (uint)uid ? 0 : 1)
                .ThenBy(h => h.Pid)
                .ToList();
            return new ScanResult(holders, Examined, BoundReached: false);
        }
    }

    private IEnumerable<int> EnumeratePids()
    {
        try
        {
            // Entries are matched by name only: for directory entries the enumerator reads the type
            // from readdir and does not stat them.
            return new FileSystemEnumerable<int>(_procRoot, static (ref FileSystemEntry entry) => ParseNumber(entry.FileName), ScanOptions)
            {
                ShouldIncludePredicate = static (ref FileSystemEntry entry) => entry.IsDirectory && ParseNumber(entry.FileName) >= 0,
            }.ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static readonly EnumerationOptions ScanOptions = new()
    {
        AttributesToSkip = 0,
        IgnoreInaccessible = true,
        RecurseSubdirectories = false,
    };

    /// <summary>
    /// <paramref name="pid"/>'s descriptor numbers; none when its descriptors are not ours to read,
    /// it is a kernel thread, or it exited. <paramref name="path"/> and <paramref name="link"/> are scratch.
    /// </summary>
    private List<int> DescriptorNumbers(int pid, Span<byte> path, Span<byte> link)
    {
        // A readable exe link means this process's descriptors are readable too (both need
        // ptrace-read access) and that it is not a kernel thread: checked without an exception.
        if (ProcFs.ReadLink(ProcPath(path, pid, "/exe"u8, -1), link[..1]) < 0)
        {
            return [];
        }

        // The descriptor numbers come from fdinfo/, not fd/: its entries are regular files, while
        // fd/'s are symbolic links that the enumerator would stat through to their targets (any
        // file, possibly on a hung network mount).
        try
        {
            return new FileSystemEnumerable<int>(_procRoot + "/" + pid.ToString(System.Globalization.CultureInfo.InvariantCulture) + "/fdinfo", static (ref FileSystemEntry entry) => ParseNumber(entry.FileName), ScanOptions).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return []; // exited, or not ours to read
        }
    }

    /// <summary>The descriptor number with which <paramref name="pid"/> holds <paramref name="target"/> (<c>socket:[inode]</c>), or -1.</summary>
    private int FindDescriptor(int pid, ReadOnlySpan<byte> target)
    {
        Span<byte> path = stackalloc byte[_procRootUtf8.Length + 48];
        Span<byte> link = stackalloc byte[64];
        foreach (var fd in DescriptorNumbers(pid, path, link))
        {
            var length = ProcFs.ReadLink(ProcPath(path, pid, "/fd/"u8, fd), link);
            if (length == target.Length && link[..length].SequenceEqual(target))
            {
                return fd;
            }
        }

        return -1;
    }

    private bool HoldsSocket(int pid, int fd, ulong inode)
    {
        Span<byte> path = stackalloc byte[_procRootUtf8.Length + 48];
        Span<byte> link = stackalloc byte[64];
        Span<byte> expected = stackalloc byte[40];
        "socket:["u8.CopyTo(expected);
        Utf8Formatter.TryFormat(inode, expected[8..], out var digits);
        expected[8 + digits] = (byte)']';
        var length = ProcFs.ReadLink(ProcPath(path, pid, "/fd/"u8, fd), link);
        return length == 9 + digits && link[..length].SequenceEqual(expected[..length]);
    }

    /// <summary>"&lt;procRoot&gt;/&lt;pid&gt;&lt;suffix&gt;[&lt;fd&gt;]\0" in <paramref name="buffer"/>.</summary>
    private ReadOnlySpan<byte> ProcPath(Span<byte> buffer, int pid, ReadOnlySpan<byte> suffix, int fd)
    {
        _procRootUtf8.CopyTo(buffer);
        var at = _procRootUtf8.Length;
        buffer[at++] = (byte)'/';
        Utf8Formatter.TryFormat(pid, buffer[at..], out var written);
        at += written;
        suffix.CopyTo(buffer[at..]);
        at += suffix.Length;
        if (fd >= 0)
        {
            Utf8Formatter.TryFormat(fd, buffer[at..], out written);
            at += written;
        }

        buffer[at++] = 0;
        return buffer[..at];
    }

    private static int ParseNumber(ReadOnlySpan<char> name) =>
        name.Length is > 0 and < 10 && !name.ContainsAnyExceptInRange('0', '9') ? int.Parse(name, System.Globalization.CultureInfo.InvariantCulture) : -1;

    private static class Reasons
    {
        public const string NotLoopback = "the peer is not on loopback";
        public const string NoSocketRow = "no row for the client's socket in /proc/net/tcp or /proc/net/tcp6 (another network namespace?)";
        public const string SocketOwnerless = "the client's socket has no owner any more (closed, TIME_WAIT)";
        public const string NoHolderVisible = "no visible process holds the socket (another pid namespace, or no permission to read its descriptors)";
        public const string ScanBounded = "the process scan reached its time or count bound";
        public const string ProcessExited = "the process exited or ran another executable while it was being resolved";
        public const string SharedByDifferentExecutables = "the socket is held by processes running different executables";
        public const string NotUnixSocket = "not a Unix domain socket";
        public const string PeerCredFailed = "SO_PEERCRED failed";
        public const string PidNotVisible = "the peer's pid is not visible in this pid namespace";
        public const string PeerChanged = "the peer process exited or now runs another executable";
        public const string HolderChanged = "the socket is now held by a process running another executable";
    }

    /// <summary>One Debug line per resolution: 60 when the process was found, 61 with the reason when it was not (uid set when the socket's owner is known); 360 when a re-check finds another caller.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.CallerResolved, Level = LogLevel.Debug, Message = "Caller resolved: uid {Uid}, pid {Pid}, executable {Executable}")]
        public static partial void CallerResolved(ILogger logger, int uid, int pid, string? executable);

        [LoggerMessage(EventId = EventIds.CallerUnresolved, Level = LogLevel.Debug, Message = "Caller process not resolved: {Reason}; uid {Uid}, {Examined} processes examined")]
        public static partial void CallerUnresolved(ILogger logger, string reason, int? uid, int examined);

        // A warning: a connection handed to another program is how an app would borrow an allowed
        // binary's attestation. Once per connection; the caller is its uid alone from then on.
        [LoggerMessage(EventId = EventIds.CallerChanged, Level = LogLevel.Warning, Message = "Caller of a connection changed since it was attested: {Reason}; uid {Uid}, attested executable {Attested}, now {Now}; executable conditions no longer match on this connection")]
        public static partial void CallerChanged(ILogger logger, string reason, int uid, string? attested, string? now);
    }
}
