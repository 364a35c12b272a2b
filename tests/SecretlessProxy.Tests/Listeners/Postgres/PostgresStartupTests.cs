using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.Postgres;

/// <summary>
/// The startup phase of the Postgres listener as an app meets it, byte for byte, without a real
/// PostgreSQL: the proxy runs in-process on a loopback port and logs in to the fake server of
/// <see cref="FakePostgresServer"/>. SSLRequest and GSSENCRequest are declined with 'N', a startup
/// message split over many writes logs in, a CancelRequest with keys the proxy never issued is
/// answered with nothing, and every malformed packet gets the FATAL ErrorResponse a server would send.
/// </summary>
[Collection(ProcessSpansCollection.Name)]
public sealed class PostgresStartupTests : IAsyncLifetime
{
    private const int SslRequest = 80877103;
    private const int GssEncRequest = 80877104;
    private const int CancelRequest = 80877102;
    private const int Protocol30 = 3 << 16;
    private const string User = "orders_app";

    private readonly string _password = "pg-startup-" + Guid.NewGuid().ToString("N");
    private readonly TestConfig _config = new();
    private FakePostgresServer _server = null!;
    private ProxyHarness _proxy = null!;

    public async Task InitializeAsync()
    {
        _server = FakePostgresServer.Scram(_password, 4096);
        // Only database "orders" may be reached: what the startup message names decides the policy.
        _config.PostgresListener("db", "localhost:" + _server.Port, "db-login", new JsonObject { ["Mode"] = "Disable" })
            .Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("db-password", _password), ["Username"] = User })
            .Policy("orders-db", new JsonObject
            {
                ["Match"] = TestConfig.Match(["localhost"], pathPrefix: "/orders", ports: [_server.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        _proxy = await ProxyHarness.StartAsync(_config.Write());
        _proxy.NeverEmit(_password);
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _server.DisposeAsync();
        _config.Dispose();
    }

    [Fact]
    public async Task Ssl_and_gss_encryption_requests_are_declined_and_a_startup_split_over_many_writes_logs_in()
    {
        using var app = await ConnectAsync();

        await app.WriteAsync(Packet(SslRequest));
        Assert.Equal((byte)'N', await app.ReadByteAsync());
        await app.WriteAsync(Packet(GssEncRequest));
        Assert.Equal((byte)'N', await app.ReadByteAsync());

        // One byte per write: the length word, the version and every parameter arrive in pieces.
        await app.WriteAsync(Startup(Protocol30, "user", "the-app", "database", "orders", "application_name", "orders-api"), bytesPerWrite: 1);
        var answer = await app.ReadUntilReadyOrErrorAsync();

        Assert.Equal('R', answer[0].Type);
        Assert.Equal(0, BinaryPrimitives.ReadInt32BigEndian(answer[0].Payload));
        Assert.Contains(answer, m => m.Type == 'S' && Encoding.UTF8.GetString(m.Payload) == "server_version\u000015.0\u0000");
        // The proxy's own cancel key data, never the server's (4242, 1717).
        var key = Assert.Single(answer, m => m.Type == 'K');
        Assert.NotEqual(4242, BinaryPrimitives.ReadInt32BigEndian(key.Payload));
        Assert.Equal('Z', answer[^1].Type);
        // The server saw the credential's user, whatever user the app named.
        Assert.Equal("startup user=" + User, _server.Events.First());
        Assert.Contains(FakePostgresServer.ProofValid, _server.Events);
    }

    [Fact]
    public async Task The_database_named_else_the_user_name_decides_the_policy()
    {
        using (var named = await ConnectAsync())
        {
            await named.WriteAsync(Startup(Protocol30, "user", "the-app", "database", "inventory"));
            var (state, message) = AssertFatal(await named.ReadUntilReadyOrErrorAsync());
            Assert.Equal("28000", state);
            Assert.StartsWith("denied by policy: no policy matches", message, StringComparison.Ordinal);
        }

        // No database: the server's default, the user name, is what the policy sees.
        using (var byUser = await ConnectAsync())
        {
            await byUser.WriteAsync(Startup(Protocol30, "user", "orders"));
            Assert.Equal('Z', (await byUser.ReadUntilReadyOrErrorAsync())[^1].Type);
        }

        Assert.Single(_server.Events, e => e.StartsWith("startup ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_newer_minor_version_and_protocol_options_get_a_NegotiateProtocolVersion_before_AuthenticationOk()
    {
        using var app = await ConnectAsync();

        await app.WriteAsync(Startup(Protocol30 | 2, "user", "the-app", "database", "orders", "_pq_.compression", "on"));
        var answer = await app.ReadUntilReadyOrErrorAsync();

        Assert.Equal('v', answer[0].Type);
        byte[] newestMinorAndDeclinedOptions = [0, 0, 0, 0, 0, 0, 0, 1, .. "_pq_.compression"u8, 0];
        Assert.Equal(newestMinorAndDeclinedOptions, answer[0].Payload);
        Assert.Equal('R', answer[1].Type);
        Assert.Equal('Z', answer[^1].Type);
    }

    [Fact]
    public async Task Bytes_sent_after_an_SSLRequest_before_its_answer_are_refused()
    {
        using var app = await ConnectAsync();

        // The startup message rides along with the SSLRequest: it would later pass for encrypted data
        // (PostgreSQL's CVE-2021-23214), so the proxy refuses instead of answering 'N'.
        await app.WriteAsync([.. Packet(SslRequest), .. Startup(Protocol30, "user", "the-app", "database", "orders")]);

        var (state, message) = AssertFatal(await app.ReadToEndAsync());
        Assert.Equal("08P01", state);
        Assert.Equal("received unencrypted data after the SSL request", message);
        Assert.Empty(_server.Events);
    }

    [Fact]
    public async Task A_second_SSLRequest_is_not_answered_twice()
    {
        using var app = await ConnectAsync();
        await app.WriteAsync(Packet(SslRequest));
        Assert.Equal((byte)'N', await app.ReadByteAsync());

        await app.WriteAsync(Packet(SslRequest));

        var (state, message) = AssertFatal(await app.ReadToEndAsync());
        Assert.Equal("0A000", state);
        Assert.Equal("unsupported frontend protocol 1234.5679: the proxy speaks 3.0", message);
    }

    [Fact]
    public async Task A_CancelRequest_with_keys_the_proxy_never_issued_is_answered_with_nothing_and_reaches_no_server()
    {
        using var app = await ConnectAsync();

        await app.WriteAsync(Packet(CancelRequest, 4242, 1717));

        // The server's own key data, guessed or replayed, cancels nothing: the proxy only honours keys it issued.
        Assert.Empty(await app.ReadToEndAsync());
        Assert.Empty(_server.Events);
    }

    [Theory]
    [InlineData(CancelRequest, 12)]
    [InlineData(CancelRequest, 20)]
    [InlineData(2 << 16, 8)]
    [InlineData(4 << 16, 8)]
    public async Task A_request_code_of_the_wrong_size_or_another_protocol_is_unsupported(int code, int length)
    {
        using var app = await ConnectAsync();
        var packet = new byte[length];
        BinaryPrimitives.WriteInt32BigEndian(packet, length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), code);

        await app.WriteAsync(packet);

        var (state, message) = AssertFatal(await app.ReadToEndAsync());
        Assert.Equal("0A000", state);
        Assert.Equal("unsupported frontend protocol " + (code >> 16) + "." + (code & 0xFFFF) + ": the proxy speaks 3.0", message);
        Assert.Empty(_server.Events);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(10_001)]
    public async Task A_startup_length_outside_8_to_10000_bytes_is_refused_before_anything_is_buffered(int length)
    {
        using var app = await ConnectAsync();
        var header = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(header, length);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), Protocol30);

        await app.WriteAsync(header);

        var (state, message) = AssertFatal(await app.ReadToEndAsync());
        Assert.Equal("08P01", state);
        Assert.Equal("invalid startup packet length " + length + " (at most 10000 bytes)", message);
    }

    [Fact]
    public async Task A_startup_message_that_closes_midway_gets_no_login()
    {
        using (var app = await ConnectAsync())
        {
            var startup = Startup(Protocol30, "user", "the-app", "database", "orders");
            await app.WriteAsync(startup[..(startup.Length - 3)]);
            app.Client.Client.Shutdown(SocketShutdown.Send);

            // The half-close races the read: the proxy either reads the short packet and answers
            // 08P01, or sees the app gone first and closes without an answer. Both refuse; what must
            // never happen is a login upstream.
            var answer = await app.ReadToEndAsync();
            if (answer.Length > 0)
            {
                var (state, message) = AssertFatal(answer);
                Assert.Equal("08P01", state);
                Assert.Equal("incomplete startup packet", message);
            }
        }

        Assert.Empty(_server.Events);
    }

    public static TheoryData<byte[], string, string> RefusedStartups => new()
    {
        { Startup(Protocol30, "user", "a", "user", "b"), "08P01", "invalid startup packet: startup parameter 'user' appears twice" },
        { Startup(Protocol30, "application_name", "no-user-no-database"), "08P01", "the startup message names no database and no user" },
        { Startup(Protocol30, "user", "the-app", "database", "orders", "replication", "database"), "0A000", "replication connections are not proxied" },
        { Startup(Protocol30, "user", "the-app", "database", "orders", "replication", "true"), "0A000", "replication connections are not proxied" },
        { Packet(Protocol30, "user\0the-app\0"u8.ToArray()), "08P01", "invalid startup packet: the startup message is not terminated" },
    };

    [Theory]
    [MemberData(nameof(RefusedStartups))]
    public async Task A_startup_message_the_proxy_cannot_serve_gets_a_fatal_error_and_no_server_connection(byte[] startup, string sqlState, string expected)
    {
        using var app = await ConnectAsync();

        await app.WriteAsync(startup);

        var (state, message) = AssertFatal(await app.ReadToEndAsync());
        Assert.Equal(sqlState, state);
        Assert.Equal(expected, message);
        Assert.Empty(_server.Events);
    }

    [Fact]
    public async Task Replication_false_is_an_ordinary_session()
    {
        using var app = await ConnectAsync();

        await app.WriteAsync(Startup(Protocol30, "user", "the-app", "database", "orders", "replication", "false"));

        Assert.Equal('Z', (await app.ReadUntilReadyOrErrorAsync())[^1].Type);
    }

    private async Task<AppConnection> ConnectAsync()
    {
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(_proxy.App.GetListenerEndPoint("db"));
        return new AppConnection(client);
    }

    /// <summary>Asserts the answer is exactly one FATAL ErrorResponse; returns its SQLSTATE and message.</summary>
    private static (string SqlState, string Message) AssertFatal(byte[] answer) => AssertFatal(Messages(answer));

    private static (string SqlState, string Message) AssertFatal(List<(char Type, byte[] Payload)> answer)
    {
        var (type, payload) = Assert.Single(answer);
        Assert.Equal('E', type);
        var fields = new Dictionary<char, string>();
        foreach (var field in Encoding.UTF8.GetString(payload).Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            fields[field[0]] = field[1..];
        }

        Assert.Equal("FATAL", fields['S']);
        return (fields['C'], fields['M']);
    }

    /// <summary>Splits typed backend messages (type, length, payload) out of everything received.</summary>
    private static List<(char Type, byte[] Payload)> Messages(byte[] bytes)
    {
        var messages = new List<(char, byte[])>();
        var at = 0;
        while (at < bytes.Length)
        {
            Assert.True(bytes.Length - at >= 5, "a partial message header at the end of the answer");
            var length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at + 1));
            Assert.True(length >= 4 && at + 1 + length <= bytes.Length, "a partial message at the end of the answer");
            messages.Add(((char)bytes[at], bytes[(at + 5)..(at + 1 + length)]));
            at += 1 + length;
        }

        return messages;
    }

    /// <summary>An untyped startup-phase packet: length (counting itself), code, then the given words or bytes.</summary>
    private static byte[] Packet(int code, params int[] words)
    {
        var payload = new byte[words.Length * 4];
        for (var i = 0; i < words.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(i * 4), words[i]);
        }

        return Packet(code, payload);
    }

    private static byte[] Packet(int code, byte[] payload)
    {
        var packet = new byte[8 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), code);
        payload.CopyTo(packet, 8);
        return packet;
    }

    private static byte[] Startup(int version, params string[] keysAndValues)
    {
        byte[] payload = [.. keysAndValues.SelectMany(t => Encoding.UTF8.GetBytes(t + "\0")), 0];
        return Packet(version, payload);
    }

    /// <summary>The app's end of one connection, with every read bounded so that a silent proxy fails the test.</summary>
    private sealed class AppConnection(TcpClient client) : IDisposable
    {
        private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
        private readonly NetworkStream _stream = client.GetStream();

        public TcpClient Client => client;

        public async Task WriteAsync(byte[] bytes, int? bytesPerWrite = null)
        {
            var step = bytesPerWrite ?? bytes.Length;
            for (var at = 0; at < bytes.Length; at += step)
            {
                await _stream.WriteAsync(bytes.AsMemory(at, Math.Min(step, bytes.Length - at)));
                if (bytesPerWrite is not null)
                {
                    // Each piece its own segment on the wire, read by the proxy on its own.
                    await Task.Delay(2);
                }
            }
        }

        public async Task<byte> ReadByteAsync()
        {
            using var timeout = new CancellationTokenSource(Bound);
            var one = new byte[1];
            await _stream.ReadExactlyAsync(one, timeout.Token);
            return one[0];
        }

        /// <summary>Typed messages up to ReadyForQuery or an ErrorResponse.</summary>
        public async Task<List<(char Type, byte[] Payload)>> ReadUntilReadyOrErrorAsync()
        {
            using var timeout = new CancellationTokenSource(Bound);
            var messages = new List<(char, byte[])>();
            var header = new byte[5];
            while (true)
            {
                await _stream.ReadExactlyAsync(header, timeout.Token);
                var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1)) - 4];
                await _stream.ReadExactlyAsync(payload, timeout.Token);
                messages.Add(((char)header[0], payload));
                if (header[0] is (byte)'Z' or (byte)'E')
                {
                    return messages;
                }
            }
        }

        /// <summary>Everything the proxy sends until it closes the connection.</summary>
        public async Task<byte[]> ReadToEndAsync()
        {
            using var timeout = new CancellationTokenSource(Bound);
            using var answer = new MemoryStream();
            try
            {
                await _stream.CopyToAsync(answer, timeout.Token);
            }
            catch (IOException)
            {
                // A reset after the proxy's last bytes: what arrived is the answer.
            }

            return answer.ToArray();
        }

        public void Dispose() => client.Dispose();
    }
}
