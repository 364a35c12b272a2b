using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Identity;

/// <summary>
/// Attacks on caller attestation with real processes through a real proxy (this process), checked
/// at a raw upstream that records the bytes it received: a connection attested as an allowed
/// program and then used by another one (exec, SCM_RIGHTS, a socket kept by an allowed binary
/// while python writes, the socket kept in flight between the proxy's looks). The clients are
/// /usr/bin/python3 and copies of it, sleep and curl; the scripts print the status of each of
/// their requests on a line of their own.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CallerRaceTests : IAsyncLifetime
{
    private const string Python = "/usr/bin/python3";
    private const string Sleep = "/usr/bin/sleep";
    private const int Nobody = 65534;

    // One script, several attacks; argv[1] names the attack. Requests are bodiless GETs on one
    // connection; a response is read to its end (Content-Length or chunked) so the next can follow.
    private const string Script = """
        import os, socket, subprocess, sys, time

        def request(s, path):
            s.sendall(b'GET ' + path.encode() + b' HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')

        def response(s):
            data = b''
            while b'\r\n\r\n' not in data:
                chunk = s.recv(4096)
                if not chunk:
                    sys.exit('connection closed before a response')
                data += chunk
            head, _, body = data.partition(b'\r\n\r\n')
            lines = head.decode('latin-1').split('\r\n')
            headers = dict((l.split(':', 1)[0].strip().lower(), l.split(':', 1)[1].strip()) for l in lines[1:])
            if 'content-length' in headers:
                while len(body) < int(headers['content-length']):
                    body += s.recv(4096)
            elif headers.get('transfer-encoding', '').lower() == 'chunked':
                while not body.endswith(b'0\r\n\r\n'):
                    body += s.recv(4096)
            return lines[0].split()[1]

        def exchange(s, path):
            request(s, path)
            print(response(s), flush=True)

        def copy_env():
            # A copy of the interpreter elsewhere finds the standard library through PYTHONHOME.
            return dict(os.environ, PYTHONHOME='/usr')

        mode, port = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 0

        if mode == 'exec-handoff':
            # An allowed request, then exec(2) another program that uses the kept-alive connection.
            s = socket.create_connection(('127.0.0.1', port))
            exchange(s, '/v1/first')
            os.set_inheritable(s.fileno(), True)
            os.execve(sys.argv[3], [sys.argv[3], __file__, 'continue', str(s.fileno())], copy_env())
        elif mode == 'continue':
            exchange(socket.socket(fileno=int(sys.argv[2])), '/v1/second')
        elif mode == 'pass-handoff':
            # An allowed request, then the connection passed over SCM_RIGHTS to another program,
            # and this process's descriptor closed before that one writes.
            a, b = socket.socketpair()
            receiver = subprocess.Popen([sys.argv[3], __file__, 'receive', str(b.fileno())], pass_fds=[b.fileno()], env=copy_env())
            s = socket.create_connection(('127.0.0.1', port))
            exchange(s, '/v1/first')
            socket.send_fds(a, [b'f'], [s.fileno()])
            s.close()
            a.sendall(b'g')
            sys.exit(receiver.wait())
        elif mode == 'receive':
            b = socket.socket(fileno=int(sys.argv[2]))
            _, fds, _, _ = socket.recv_fds(b, 1, 1)
            if b.recv(1) != b'g':
                sys.exit('no go')
            exchange(socket.socket(fileno=fds[0]), '/v1/second')
        elif mode == 'kept-by-sleep':
            # The allowed binary holds the socket from before it is connected; python writes.
            s = socket.socket()
            sleeper = subprocess.Popen(['/usr/bin/sleep', '60'], pass_fds=[s.fileno()])
            s.connect(('127.0.0.1', port))
            exchange(s, '/v1/first')
            sleeper.kill()
        elif mode == 'in-flight':
            # The reported attack: the process becomes /usr/bin/sleep with the socket open, while a
            # forked child keeps its own descriptor in flight in a socketpair whenever it is not
            # writing, so that sleep is the only holder a scan of /proc can find.
            a, b = socket.socketpair()
            s = socket.socket()
            os.set_inheritable(s.fileno(), True)
            if os.fork() == 0:
                parent = os.getppid()
                for _ in range(400):
                    if os.readlink('/proc/%d/exe' % parent) == '/usr/bin/sleep':
                        break
                    time.sleep(0.025)
                s.connect(('127.0.0.1', port))
                socket.send_fds(a, [b'f'], [s.fileno()])
                s.close()
                time.sleep(0.5)
                _, fds, _, _ = socket.recv_fds(b, 1, 1)
                w = socket.socket(fileno=fds[0])
                request(w, '/v1/first')
                socket.send_fds(a, [b'f'], [w.fileno()])
                w.close()
                _, fds, _, _ = socket.recv_fds(b, 1, 1)
                print(response(socket.socket(fileno=fds[0])), flush=True)
                os._exit(0)
            os.execv('/usr/bin/sleep', ['sleep', '60'])
        """;

    private readonly ITestOutputHelper _output;
    private readonly TestConfig _config = new();
    private readonly string _key = "caller-race-" + Guid.NewGuid().ToString("N");
    private readonly string _temp;
    private readonly string _script;
    private readonly RawUpstream _upstream = RawUpstream.Start();

    public CallerRaceTests(ITestOutputHelper output)
    {
        _output = output;

        // Readable and traversable by other uids: the script also runs as nobody.
        _temp = Directory.CreateTempSubdirectory("secretless-race-").FullName;
        File.SetUnixFileMode(_temp, (UnixFileMode)0b111_101_101);
        _script = Path.Combine(_temp, "race.py");
        File.WriteAllText(_script, Script);
        File.SetUnixFileMode(_script, (UnixFileMode)0b110_100_100);
        _config.RouteListener("api", "http://127.0.0.1:" + _upstream.Port)
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) });
    }

    private static int OwnUid => CallerClient.FsUidOf(Environment.ProcessId);

    /// <summary>Every request head the upstream received, byte for byte, in arrival order.</summary>
    private string[] Upstream => _upstream.Received.Select(r => r.Head).ToArray();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _config.Dispose();
        Directory.Delete(_temp, recursive: true);
    }

    [Fact]
    public async Task An_allowed_curl_gets_the_credential_on_every_request_of_its_kept_alive_connection()
    {
        var curl = CallerClient.RealPath(CallerClient.Which("curl") ?? "/usr/bin/curl");
        AllowOnly(curl, uids: [OwnUid]);
        await using var proxy = await StartAsync();
        var url = proxy.Listener("api", "/v1/").ToString();

        var result = await ExternalClient.RunAsync(curl, ["-sS", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", url + "one", url + "two"]);

        // The second transfer reused the first one's connection (no new connect): re-checked, still curl.
        Assert.Equal(["200 1", "200 0"], Lines(result.Output));
        Assert.Equal(2, Upstream.Length);
        Assert.All(Upstream, head => Assert.Contains("X-Api-Key: " + _key + "\r\n", head, StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(proxy.Logs.Entries, e => e.EventId.Id == EventIds.CallerChanged);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task A_kept_alive_connection_used_after_its_allowed_process_execs_another_program_is_refused()
    {
        var python = CallerClient.RealPath(Python);
        var copy = CopyOf(python);
        AllowOnly(python, uids: [OwnUid]);
        await using var proxy = await StartAsync();

        var lines = await RunScriptAsync(Python, ["exec-handoff", Port(proxy), copy], expectedLines: 2);

        Assert.Equal(["200", "403"], lines);
        var request = Assert.Single(Upstream);
        Assert.StartsWith("GET /v1/first ", request, StringComparison.Ordinal);
        Assert.Contains(_key, request, StringComparison.Ordinal);
        var changed = Assert.Single(proxy.Logs.Entries, e => e.EventId.Id == EventIds.CallerChanged);
        Assert.Contains("another executable", changed.Message, StringComparison.Ordinal);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task A_kept_alive_connection_passed_over_SCM_RIGHTS_to_another_program_is_refused()
    {
        var python = CallerClient.RealPath(Python);
        var copy = CopyOf(python);
        AllowOnly(python, uids: [OwnUid]);
        await using var proxy = await StartAsync();

        var lines = await RunScriptAsync(Python, ["pass-handoff", Port(proxy), copy], expectedLines: 2);

        Assert.Equal(["200", "403"], lines);
        var request = Assert.Single(Upstream);
        Assert.StartsWith("GET /v1/first ", request, StringComparison.Ordinal);
        Assert.Single(proxy.Logs.Entries, e => e.EventId.Id == EventIds.CallerChanged);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task Python_writing_on_a_socket_that_an_allowed_binary_also_holds_is_refused()
    {
        AllowOnly(Sleep, uids: [OwnUid]);
        await using var proxy = await StartAsync();

        var lines = await RunScriptAsync(Python, ["kept-by-sleep", Port(proxy)], expectedLines: 1);

        Assert.Equal(["403"], lines);
        Assert.Empty(Upstream);
        await proxy.AssertNoSecretEmittedAsync();
    }

    [RootFact]
    public async Task The_in_flight_attack_from_another_uid_fails_a_condition_written_with_Uids()
    {
        // Written as the configuration now requires: the uid that may run the allowed binary.
        // The socket keeps its creator's uid, nobody's, whichever process holds it.
        AllowOnly(Sleep, uids: [OwnUid]);
        await using var proxy = await StartAsync();

        var lines = await RunScriptAsync("setpriv", ["--reuid=" + Nobody, "--regid=" + Nobody, "--clear-groups", Python, _script, "in-flight", Port(proxy)], expectedLines: 1, scriptAsArgument: false);

        Assert.Equal(["403"], lines);
        Assert.Empty(Upstream);
        await proxy.AssertNoSecretEmittedAsync();
    }

    /// <summary>One policy for the raw upstream that allows only <paramref name="executable"/>, by path and SHA-256.</summary>
    private void AllowOnly(string executable, int[] uids)
    {
        var policy = TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "key", "X-Api-Key", "{token}");
        policy["Caller"] = new JsonObject
        {
            ["Uids"] = new JsonArray(uids.Select(u => (JsonNode)u).ToArray()),
            ["Executables"] = new JsonArray(executable),
            ["ExecutableSha256"] = new JsonArray(CallerClient.Sha256Of(executable)),
        };
        _config.Set("Unmatched", "Deny").Policy("only-" + Path.GetFileName(executable), policy);
    }

    private async Task<ProxyHarness> StartAsync()
    {
        var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key);
        return proxy;
    }

    private static string Port(ProxyHarness proxy) => proxy.Listener("api").Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A copy of <paramref name="executable"/> at another path: the same bytes, another program for an Executables condition.</summary>
    private string CopyOf(string executable)
    {
        var copy = Path.Combine(_temp, Path.GetFileName(executable) + "-copy");
        File.Copy(executable, copy);
        File.SetUnixFileMode(copy, (UnixFileMode)0b111_101_101);
        return copy;
    }

    private static string[] Lines(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// Runs the script and returns the first <paramref name="expectedLines"/> lines it prints,
    /// then ends it and its children (sleep may still hold the pipe, so its end is not awaited).
    /// </summary>
    private async Task<string[]> RunScriptAsync(string program, string[] arguments, int expectedLines, bool scriptAsArgument = true)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (scriptAsArgument)
        {
            start.ArgumentList.Add(_script);
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var key in start.Environment.Keys.Where(k => k.EndsWith("_proxy", StringComparison.OrdinalIgnoreCase)).ToArray())
        {
            start.Environment.Remove(key);
        }

        using var process = Process.Start(start)!;
        var stderr = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            lock (stderr)
            {
                stderr.AppendLine(e.Data);
            }
        };
        process.BeginErrorReadLine();
        var lines = new List<string>();
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (lines.Count < expectedLines && await process.StandardOutput.ReadLineAsync(bound.Token) is { } line)
            {
                lines.Add(line.Trim());
            }
        }
        catch (OperationCanceledException)
        {
            // Reported below with what the script said.
        }
        finally
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            await process.WaitForExitAsync(CancellationToken.None);
        }

        lock (stderr)
        {
            _output.WriteLine("script output: " + string.Join(" | ", lines) + "\nstderr: " + stderr);
            Assert.True(lines.Count == expectedLines, "expected " + expectedLines + " lines from the script, got: " + string.Join(" | ", lines) + "\nstderr: " + stderr);
        }

        return lines.ToArray();
    }
}
