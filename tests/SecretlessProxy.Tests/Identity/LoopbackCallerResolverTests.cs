using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Attestation;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Identity;

/// <summary>
/// Caller attestation against real processes on real sockets: curl, the system python3, this test
/// process, and curl copies run as another uid connect to a listener here, and the resolver's answer
/// is compared with what /proc and the binaries' bytes say, read independently by the test.
/// Linux only: /proc, SO_PEERCRED and setpriv are the subject.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class LoopbackCallerResolverTests : IDisposable
{
    private const int Nobody = 65534;
    private static readonly TimeSpan AcceptBound = TimeSpan.FromSeconds(20);

    private readonly ITestOutputHelper _output;
    private readonly CapturingLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggerFactory;
    private readonly LoopbackCallerResolver _resolver;
    private readonly string _temp;
    private readonly List<CallerClient> _clients = [];
    private readonly List<Socket> _accepted = [];

    public LoopbackCallerResolverTests(ITestOutputHelper output)
    {
        _output = output;
        _loggerFactory = LoggerFactory.Create(builder => builder.AddProvider(_logs).SetMinimumLevel(LogLevel.Debug));
        _resolver = NewResolver(TimeProvider.System);

        // Readable and traversable by other uids: copies of curl run from here as nobody.
        _temp = Directory.CreateTempSubdirectory("secretless-caller-").FullName;
        File.SetUnixFileMode(_temp, (UnixFileMode)0b111_101_101);
    }

    private static string Curl => CallerClient.RealPath(CallerClient.Which("curl") ?? "/usr/bin/curl");

    public void Dispose()
    {
        foreach (var socket in _accepted)
        {
            socket.Dispose();
        }

        foreach (var client in _clients)
        {
            client.Dispose();
        }

        _loggerFactory.Dispose();
        Directory.Delete(_temp, recursive: true);
    }

    [Fact]
    public async Task Curl_over_ipv4_is_resolved_to_its_pid_uid_executable_hash_and_cgroup()
    {
        using var listener = Listen(IPAddress.Loopback);

        var (caller, client) = await ConnectAndResolveAsync(listener, () => CallerClient.Curl(Url(listener)));

        AssertIsProcess(caller, client.Pid, Curl);
        Assert.Equal(1, _resolver.HashesComputed);
        var resolved = Assert.Single(_logs.Entries, e => e.EventId.Id == EventIds.CallerResolved);
        Assert.Equal(LogLevel.Debug, resolved.Level);
        Assert.Contains("pid " + client.Pid, resolved.Message, StringComparison.Ordinal);
    }

    [RequiresFact("/usr/bin/python3")]
    public async Task System_python_is_resolved_to_the_real_path_of_its_interpreter()
    {
        const string Python = "/usr/bin/python3";
        using var listener = Listen(IPAddress.Loopback);

        var (caller, client) = await ConnectAndResolveAsync(listener, () => PythonClient(Python, "127.0.0.1", Port(listener)));

        // /usr/bin/python3 is a symbolic link (to python3.11 on Debian 12): the process runs the target.
        AssertIsProcess(caller, client.Pid, CallerClient.RealPath(Python));
    }

    [RequiresFact("/usr/bin/python3", "/usr/bin/sleep")]
    public async Task A_socket_held_by_processes_running_different_executables_gives_the_uid_alone()
    {
        const string Python = "/usr/bin/python3";
        using var listener = Listen(IPAddress.Loopback);
        // Connect, fork a child that keeps the socket, then exec an innocent binary in the parent
        // with the socket still open: the parent now "is" /usr/bin/sleep while the child can write.
        const string Script = """
            import os, socket, sys, time
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
            os.set_inheritable(s.fileno(), True)
            if os.fork() == 0:
                parent = os.getppid()
                for _ in range(400):
                    if os.readlink('/proc/%d/exe' % parent).endswith('/sleep'):
                        break
                    time.sleep(0.025)
                s.send(b'r')
                s.recv(1)
                os._exit(0)
            os.execv('/usr/bin/sleep', ['sleep', '60'])
            """;
        var client = Started(CallerClient.Start(Python, "-c", Script, "127.0.0.1", Port(listener).ToString()));
        var accepted = Kept(await AcceptAsync(listener, client));
        using var ready = new CancellationTokenSource(AcceptBound);
        Assert.Equal(1, await accepted.ReceiveAsync(new byte[1], ready.Token));

        var caller = _resolver.ResolveTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);

        Assert.True(caller.IsKnown);
        Assert.NotNull(caller.Uid);
        Assert.Null(caller.Pid);
        Assert.Null(caller.Executable);
        Assert.Contains(_logs.Entries, e => e.EventId.Id == 61 && e.Message.Contains("held by processes running different executables"));
    }

    [Fact]
    public async Task A_recheck_while_the_holder_is_unchanged_returns_the_attestation_itself_without_a_scan()
    {
        const string Python = "/usr/bin/python3";
        using var listener = Listen(IPAddress.Loopback);
        var client = Started(PythonClient(Python, "127.0.0.1", Port(listener)));
        var accepted = Kept(await AcceptAsync(listener, client));

        var attested = _resolver.AttestTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);
        var rechecked = _resolver.Recheck(attested);

        AssertIsProcess(attested.Caller, client.Pid, CallerClient.RealPath(Python));
        Assert.Same(attested, rechecked);
        Assert.Single(_logs.Entries, e => e.EventId.Id == EventIds.CallerResolved);
        Assert.DoesNotContain(_logs.Entries, e => e.EventId.Id == EventIds.CallerChanged);

        // Rough cost of the per-request check (printed, not asserted).
        var timings = new List<double>();
        for (var i = 0; i < 100; i++)
        {
            var started = Stopwatch.GetTimestamp();
            Assert.Same(attested, _resolver.Recheck(attested));
            timings.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
        }

        timings.Sort();
        _output.WriteLine("Recheck: min " + timings[0].ToString("F1") + " us, median " + timings[50].ToString("F1") + " us, max " + timings[^1].ToString("F1") + " us");
    }

    [Fact]
    public async Task A_unix_socket_peer_that_execs_another_binary_after_it_was_attested_is_its_uid_alone()
    {
        const string Python = "/usr/bin/python3";
        var path = Path.Combine(_temp, "exec.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        const string Script = """
            import os, socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            s.recv(1)
            os.set_inheritable(s.fileno(), True)
            os.execv('/usr/bin/sleep', ['sleep', '60'])
            """;
        var client = Started(CallerClient.Start(Python, "-c", Script, path));
        using var timeout = new CancellationTokenSource(AcceptBound);
        var accepted = Kept(await listener.AcceptAsync(timeout.Token));
        var attested = _resolver.AttestUnixPeer(accepted);
        AssertIsProcess(attested.Caller, client.Pid, CallerClient.RealPath(Python));
        Assert.Same(attested, _resolver.Recheck(attested));

        await accepted.SendAsync(new byte[] { 1 });
        while (new FileInfo("/proc/" + client.Pid + "/exe").LinkTarget != "/usr/bin/sleep")
        {
            await Task.Delay(20, timeout.Token);
        }

        var rechecked = _resolver.Recheck(attested);

        Assert.Equal(attested.Caller.Uid, rechecked.Caller.Uid);
        Assert.Null(rechecked.Caller.Pid);
        Assert.Null(rechecked.Caller.Executable);
        var changed = Assert.Single(_logs.Entries, e => e.EventId.Id == EventIds.CallerChanged);
        Assert.Contains("the peer process exited or now runs another executable", changed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_holder_that_execs_another_binary_after_it_was_attested_is_its_uid_alone_from_then_on()
    {
        const string Python = "/usr/bin/python3";
        using var listener = Listen(IPAddress.Loopback);
        // Attested as python; told to go on, it becomes /usr/bin/sleep with the socket still open.
        const string Script = """
            import os, socket, sys
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
            s.recv(1)
            os.set_inheritable(s.fileno(), True)
            os.execv('/usr/bin/sleep', ['sleep', '60'])
            """;
        var client = Started(CallerClient.Start(Python, "-c", Script, "127.0.0.1", Port(listener).ToString()));
        var accepted = Kept(await AcceptAsync(listener, client));
        var attested = _resolver.AttestTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);
        AssertIsProcess(attested.Caller, client.Pid, CallerClient.RealPath(Python));

        await accepted.SendAsync(new byte[] { 1 });
        using (var bound = new CancellationTokenSource(AcceptBound))
        {
            while (new FileInfo("/proc/" + client.Pid + "/exe").LinkTarget != "/usr/bin/sleep")
            {
                await Task.Delay(20, bound.Token);
            }
        }

        var rechecked = _resolver.Recheck(attested);
        var again = _resolver.Recheck(rechecked);

        Assert.True(rechecked.Caller.IsKnown);
        Assert.Equal(attested.Caller.Uid, rechecked.Caller.Uid);
        Assert.Null(rechecked.Caller.Pid);
        Assert.Null(rechecked.Caller.Executable);
        Assert.Same(rechecked, again);
        var changed = Assert.Single(_logs.Entries, e => e.EventId.Id == EventIds.CallerChanged);
        Assert.Equal(LogLevel.Warning, changed.Level);
        Assert.Contains("another executable", changed.Message, StringComparison.Ordinal);
        Assert.Contains("now /usr/bin/sleep", changed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_start_time_is_field_22_counted_after_the_last_parenthesis()
    {
        // A command name may hold spaces and parentheses: "a) b) c" here.
        Assert.Equal(987654321UL, LoopbackCallerResolver.ParseStartTime("1234 (a) b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654321 1000 200 18446744073709551615"u8));
        Assert.Null(LoopbackCallerResolver.ParseStartTime("1234 (short) S 1 2 3"u8));
        Assert.Null(LoopbackCallerResolver.ParseStartTime(""u8));

        var own = File.ReadAllText("/proc/self/stat");
        var expected = ulong.Parse(own[(own.LastIndexOf(')') + 2)..].Split(' ')[19], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(expected, _resolver.ReadStartTime(Environment.ProcessId));
    }

    [Fact]
    public async Task This_test_process_is_resolved_to_itself()
    {
        using var listener = Listen(IPAddress.Loopback);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        var connecting = client.ConnectAsync(listener.LocalEndpoint);
        using var accepted = await AcceptAsync(listener);
        await connecting;
        var caller = _resolver.ResolveTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);

        AssertIsProcess(caller, Environment.ProcessId, CallerClient.RealPath(Environment.ProcessPath!));
    }

    [RequiresFact(Needs.Ipv6Loopback, "/usr/bin/python3")]
    public async Task Curl_and_python_over_ipv6_loopback_are_resolved()
    {
        Assert.True(TryListen(IPAddress.IPv6Loopback, out var listener), "cannot listen on [::1]");

        using (listener)
        {
            var (caller, client) = await ConnectAndResolveAsync(listener, () => CallerClient.Curl("http://[::1]:" + Port(listener) + "/", Curl, null, "-g"));
            AssertIsProcess(caller, client.Pid, Curl);

            (caller, client) = await ConnectAndResolveAsync(listener, () => PythonClient("/usr/bin/python3", "::1", Port(listener)));
            AssertIsProcess(caller, client.Pid, CallerClient.RealPath("/usr/bin/python3"));
        }
    }

    [RequiresFact(Needs.Ipv6Loopback)]
    public async Task An_ipv4_client_of_a_dual_stack_listener_is_resolved_from_its_mapped_address()
    {
        // Kestrel on [::] sees an IPv4 client as ::ffff:127.0.0.1; curl's socket is AF_INET, in /proc/net/tcp.
        var listener = TcpListener.Create(0); // [::] with DualMode, as Kestrel binds "http://*:port"
        listener.Start();
        using var stop = listener;

        var (caller, client) = await ConnectAndResolveAsync(listener, () => CallerClient.Curl(Url(listener)), accepted =>
            Assert.True(((IPEndPoint)accepted.RemoteEndPoint!).Address.IsIPv4MappedToIPv6, "the accepted remote endpoint should be IPv4-mapped"));

        AssertIsProcess(caller, client.Pid, Curl);
    }

    [Fact]
    public async Task A_dual_mode_client_socket_is_found_in_tcp6_with_mapped_addresses()
    {
        // An AF_INET6 socket connecting to an IPv4 listener: its row is in /proc/net/tcp6 as ::ffff:127.0.0.1.
        using var listener = Listen(IPAddress.Loopback);
        using var client = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };

        var connecting = client.ConnectAsync(new IPEndPoint(IPAddress.Loopback.MapToIPv6(), Port(listener)));
        using var accepted = await AcceptAsync(listener);
        await connecting;
        var caller = _resolver.ResolveTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);

        Assert.Contains(":" + Port(listener).ToString("X4"), File.ReadAllText("/proc/net/tcp6"), StringComparison.Ordinal);
        AssertIsProcess(caller, Environment.ProcessId, CallerClient.RealPath(Environment.ProcessPath!));
    }

    [Fact]
    public async Task A_second_connection_from_the_same_binary_is_not_hashed_again()
    {
        using var listener = Listen(IPAddress.Loopback);

        var (first, _) = await ConnectAndResolveAsync(listener, () => CallerClient.Curl(Url(listener)));
        var (second, client) = await ConnectAndResolveAsync(listener, () => CallerClient.Curl(Url(listener)));

        AssertIsProcess(second, client.Pid, Curl);
        Assert.Equal(first.ExecutableSha256, second.ExecutableSha256);
        Assert.Equal(1, _resolver.HashesComputed);

        // Rough cost of one resolution with a warm hash cache (printed, not asserted).
        var third = CallerClient.Curl(Url(listener));
        _clients.Add(third);
        using var accepted = await AcceptAsync(listener, third);
        var remote = (IPEndPoint)accepted.RemoteEndPoint!;
        var local = (IPEndPoint)accepted.LocalEndPoint!;
        var timings = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            var started = Stopwatch.GetTimestamp();
            Assert.Equal(third.Pid, _resolver.ResolveTcp(remote, local).Pid);
            timings.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        timings.Sort();
        _output.WriteLine("ResolveTcp: min " + timings[0].ToString("F3") + " ms, median " + timings[10].ToString("F3") + " ms, max " + timings[^1].ToString("F3") + " ms over "
            + Directory.EnumerateDirectories("/proc").Count(d => char.IsAsciiDigit(Path.GetFileName(d)[0])) + " processes");
        Assert.Equal(1, _resolver.HashesComputed);
    }

    [RootFact]
    public async Task Copies_of_curl_run_as_nobody_give_uid_65534_their_own_path_and_the_hash_of_their_bytes()
    {
        var copy = CopyCurl("curl-copy");
        var modified = CopyCurl("curl-modified");
        await using (var stream = new FileStream(modified, FileMode.Append))
        {
            stream.WriteByte(0);
        }

        using var listener = Listen(IPAddress.Loopback);

        var (original, _) = await ConnectAndResolveAsync(listener, () => CallerClient.Curl(Url(listener), Curl, AsNobody));
        Assert.Equal(Nobody, original.Uid);
        Assert.Equal(Curl, original.Executable);

        var (fromCopy, copyClient) = await ConnectAndResolveAsync(listener, () => CallerClient.Curl(Url(listener), copy, AsNobody));
        AssertIsProcess(fromCopy, copyClient.Pid, copy);
        Assert.Equal(Nobody, fromCopy.Uid);
        Assert.Equal(original.ExecutableSha256, fromCopy.ExecutableSha256);

        var (fromModified, modifiedClient) = await ConnectAndResolveAsync(listener, () => CallerClient.Curl(Url(listener), modified, AsNobody));
        AssertIsProcess(fromModified, modifiedClient.Pid, modified);
        Assert.Equal(Nobody, fromModified.Uid);
        Assert.NotEqual(original.ExecutableSha256, fromModified.ExecutableSha256);

        // Each is a different file (inode), so each was hashed once.
        Assert.Equal(3, _resolver.HashesComputed);
    }

    [Fact]
    public async Task A_binary_deleted_while_it_runs_is_reported_at_its_path_with_the_hash_of_the_running_bytes()
    {
        var copy = CopyCurl("curl-deleted");
        using var listener = Listen(IPAddress.Loopback);

        var client = CallerClient.Curl(Url(listener), copy);
        _clients.Add(client);
        using var accepted = await AcceptAsync(listener, client);
        File.Delete(copy);
        var caller = _resolver.ResolveTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);

        Assert.Equal(client.Pid, caller.Pid);
        Assert.Equal(copy, caller.Executable); // without the kernel's " (deleted)"
        Assert.Equal(CallerClient.Sha256Of(Curl), caller.ExecutableSha256);
    }

    [Fact]
    public async Task The_scan_bound_leaves_the_socket_owner_uid_alone()
    {
        // A clock on which every reading is a second later: the bound is reached before the first process.
        var resolver = NewResolver(new LeapingTimeProvider());
        using var listener = Listen(IPAddress.Loopback);

        var client = CallerClient.Curl(Url(listener));
        _clients.Add(client);
        using var accepted = await AcceptAsync(listener, client);
        var caller = resolver.ResolveTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);

        Assert.True(caller.IsKnown);
        Assert.Equal(CallerClient.FsUidOf(client.Pid), caller.Uid);
        Assert.Null(caller.Pid);
        Assert.Null(caller.Executable);
        Assert.Null(caller.ExecutableSha256);
        var entry = Assert.Single(_logs.Entries, e => e.EventId.Id == EventIds.CallerUnresolved);
        Assert.Contains("bound", entry.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Non_loopback_peers_and_endpoints_without_a_socket_are_unknown()
    {
        var local = new IPEndPoint(IPAddress.Loopback, 8080);

        Assert.Same(Caller.Unknown, _resolver.ResolveTcp(new IPEndPoint(IPAddress.Parse("10.1.2.3"), 40000), new IPEndPoint(IPAddress.Parse("10.1.2.4"), 8080)));
        Assert.Same(Caller.Unknown, _resolver.ResolveTcp(new IPEndPoint(IPAddress.Parse("::ffff:10.1.2.3"), 40000), local));
        Assert.Same(Caller.Unknown, _resolver.ResolveTcp(new IPEndPoint(IPAddress.Parse("fe80::1"), 40000), local));

        // Loopback, but no such connection.
        Assert.Same(Caller.Unknown, _resolver.ResolveTcp(new IPEndPoint(IPAddress.Parse("127.0.0.9"), 1), new IPEndPoint(IPAddress.Loopback, 2)));

        Assert.Equal(4, _logs.Entries.Count(e => e.EventId.Id == EventIds.CallerUnresolved && e.Level == LogLevel.Debug));
        Assert.Contains(_logs.Entries, e => e.Message.Contains("not on loopback", StringComparison.Ordinal));
        Assert.Contains(_logs.Entries, e => e.Message.Contains("no row", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_unix_socket_peer_is_resolved_from_SO_PEERCRED()
    {
        var path = Path.Combine(_temp, "proxy.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        File.SetUnixFileMode(path, (UnixFileMode)0b111_111_111);

        var client = Started(CallerClient.Curl("http://x/", Curl, null, "--unix-socket", path));
        AssertIsProcess(await AcceptUnixAndResolveAsync(listener), client.Pid, Curl);
    }

    [RootFact]
    public async Task A_unix_socket_peer_running_as_nobody_is_resolved_to_uid_65534_and_its_executable()
    {
        var path = Path.Combine(_temp, "proxy.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        File.SetUnixFileMode(path, (UnixFileMode)0b111_111_111);

        var copy = CopyCurl("curl-unix");
        var client = Started(CallerClient.Curl("http://x/", copy, AsNobody, "--unix-socket", path));
        var resolved = await AcceptUnixAndResolveAsync(listener);
        AssertIsProcess(resolved, client.Pid, copy);
        Assert.Equal(Nobody, resolved.Uid);
    }

    [Fact]
    public void SO_PEERCRED_is_not_asked_of_a_tcp_socket()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        Assert.Same(Caller.Unknown, _resolver.ResolveUnixPeer(socket));
    }

    [Fact]
    public void Cgroup_paths_of_container_runtimes_give_their_container_id()
    {
        const string Id = "3f1c9d2e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";

        Assert.Equal(("/system.slice/docker-" + Id + ".scope", Id), LoopbackCallerResolver.ParseCgroup("0::/system.slice/docker-" + Id + ".scope\n"));
        Assert.Equal(
            ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice/cri-containerd-" + Id + ".scope", Id),
            LoopbackCallerResolver.ParseCgroup("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice/cri-containerd-" + Id + ".scope\n"));
        Assert.Equal(("/kubepods.slice/crio-" + Id + ".scope", Id), LoopbackCallerResolver.ParseCgroup("0::/kubepods.slice/crio-" + Id + ".scope"));
        Assert.Equal(("/crio-" + Id, Id), LoopbackCallerResolver.ParseCgroup("0::/crio-" + Id));

        // cgroup v1: the first path is the cgroup; the id is found in any line.
        Assert.Equal(("/docker/" + Id, Id), LoopbackCallerResolver.ParseCgroup("12:pids:/docker/" + Id + "\n11:memory:/docker/" + Id + "\n"));
        Assert.Equal(("/kubepods/besteffort/pod1b2c3d4e-0000-1111-2222-333344445555/" + Id, Id),
            LoopbackCallerResolver.ParseCgroup("3:cpu,cpuacct:/kubepods/besteffort/pod1b2c3d4e-0000-1111-2222-333344445555/" + Id + "\n"));

        // Hybrid hierarchy, no container (this kind of machine): the v2 path, no id; a 32-hex segment is not one.
        Assert.Equal(("/", null), LoopbackCallerResolver.ParseCgroup("4:memory:/process_api/bb2b7d1288ccb15f81a9ec61d086203a\n0::/\n"));
        Assert.Equal(("/user.slice/user-1000.slice/session-2.scope", null), LoopbackCallerResolver.ParseCgroup("0::/user.slice/user-1000.slice/session-2.scope\n"));
        Assert.Equal(((string?)null, (string?)null), LoopbackCallerResolver.ParseCgroup(""));
    }

    [RequiresFact(Needs.LittleEndian)]
    public void Endpoints_are_formatted_as_the_kernel_prints_them()
    {
        Assert.Equal("0100007F:1F90", Ascii(ProcNetTcp.Format(IPAddress.Loopback, 8080)));
        Assert.Equal("00000000000000000000000001000000:0050", Ascii(ProcNetTcp.Format(IPAddress.IPv6Loopback, 80)));
        Assert.Equal("0000000000000000FFFF00000100007F:D431", Ascii(ProcNetTcp.Format(IPAddress.Parse("::ffff:127.0.0.1"), 54321)));

        var row = "   3: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 987654 1 0000000000000000 20 4 30 10 -1"u8;
        Assert.True(ProcNetTcp.TryMatch(row, "0100007F:D431"u8, "0100007F:1F90"u8, out var socket));
        Assert.Equal(new ProcNetTcp.SocketRow(1000, 987654), socket);
        Assert.False(ProcNetTcp.TryMatch(row, "0100007F:1F90"u8, "0100007F:D431"u8, out _));

        static string Ascii(byte[] bytes) => System.Text.Encoding.ASCII.GetString(bytes);
    }

    private static readonly string[] AsNobody = ["--reuid=" + Nobody, "--regid=" + Nobody, "--clear-groups"];

    // A generous scan bound: a loaded CI machine must not turn into an unresolved pid here (the bound
    // itself is tested with a clock that leaps).
    private LoopbackCallerResolver NewResolver(TimeProvider time) =>
        new(time, _loggerFactory.CreateLogger<LoopbackCallerResolver>()) { ScanBudget = TimeSpan.FromSeconds(10) };


    private string CopyCurl(string name)
    {
        var copy = Path.Combine(_temp, name);
        File.Copy(Curl, copy);
        File.SetUnixFileMode(copy, (UnixFileMode)0b111_101_101);
        return copy;
    }

    private CallerClient PythonClient(string python, string host, int port) => CallerClient.Start(python, "-c",
        "import socket, sys\ns = socket.create_connection((sys.argv[1], int(sys.argv[2])))\ns.recv(1)\n", host, port.ToString());

    /// <summary>Every field the resolver reports for a process it found, against the test's own reading of /proc and the binary.</summary>
    private void AssertIsProcess(Caller caller, int pid, string executable)
    {
        _output.WriteLine(caller + " sha256=" + caller.ExecutableSha256 + " cgroup=" + caller.Cgroup + " container=" + caller.ContainerId);
        Assert.True(caller.IsKnown);
        Assert.Equal(pid, caller.Pid);
        Assert.Equal(CallerClient.FsUidOf(pid), caller.Uid);
        Assert.Equal(executable, caller.Executable);
        Assert.Equal(CallerClient.Sha256Of(executable), caller.ExecutableSha256);

        var cgroupText = File.ReadAllText("/proc/" + pid + "/cgroup");
        Assert.Equal(CallerClient.ExpectedCgroup(pid), caller.Cgroup);
        if (ContainerIdPattern().IsMatch(cgroupText))
        {
            Assert.NotNull(caller.ContainerId);
            Assert.Contains(caller.ContainerId, cgroupText, StringComparison.Ordinal);
        }
        else
        {
            Assert.Null(caller.ContainerId);
        }
    }

    [GeneratedRegex("(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")]
    private static partial Regex ContainerIdPattern();

    private async Task<(Caller Caller, CallerClient Client)> ConnectAndResolveAsync(TcpListener listener, Func<CallerClient> start, Action<Socket>? inspect = null)
    {
        var client = start();
        _clients.Add(client);
        var accepted = Kept(await AcceptAsync(listener, client));
        inspect?.Invoke(accepted);
        var caller = _resolver.ResolveTcp((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);
        return (caller, client);
    }

    /// <summary>Keeps a connection open until the test ends: its client stays alive for the test's own reading of /proc.</summary>
    private Socket Kept(Socket accepted)
    {
        _accepted.Add(accepted);
        return accepted;
    }

    private CallerClient Started(CallerClient client)
    {
        _clients.Add(client);
        return client;
    }

    private async Task<Caller> AcceptUnixAndResolveAsync(Socket listener)
    {
        using var timeout = new CancellationTokenSource(AcceptBound);
        var accepted = Kept(await listener.AcceptAsync(timeout.Token));
        return _resolver.ResolveUnixPeer(accepted);
    }

    private static async Task<Socket> AcceptAsync(TcpListener listener, CallerClient? client = null)
    {
        using var timeout = new CancellationTokenSource(AcceptBound);
        try
        {
            return await listener.AcceptSocketAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail("no connection within " + AcceptBound + "; client: " + (client is null ? "this process" : await client.DescribeAsync()));
            throw;
        }
    }

    private static TcpListener Listen(IPAddress address)
    {
        var listener = new TcpListener(address, 0);
        listener.Start();
        return listener;
    }

    private static bool TryListen(IPAddress address, out TcpListener listener)
    {
        listener = new TcpListener(address, 0);
        try
        {
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            listener.Dispose();
            return false;
        }
    }

    private static int Port(TcpListener listener) => ((IPEndPoint)listener.LocalEndpoint).Port;

    private static string Url(TcpListener listener) => "http://127.0.0.1:" + Port(listener) + "/";

    /// <summary>A clock that is a second further on at every reading.</summary>
    private sealed class LeapingTimeProvider : TimeProvider
    {
        private long _now;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Add(ref _now, TimeSpan.TicksPerSecond);
    }
}
