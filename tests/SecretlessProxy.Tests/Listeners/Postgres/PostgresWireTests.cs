using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using SecretlessProxy.Listeners.Postgres;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Listeners.Postgres;

/// <summary>
/// The PostgreSQL v3 wire code on its own, in memory: backend message framing as the proxy reads it
/// during login (whole messages from any split of reads, lengths out of bounds refused before
/// anything is buffered), the app's StartupMessage parameters from any split of segments, and the
/// messages the proxy writes, byte for byte as the protocol documentation lays them out.
/// </summary>
public sealed class PostgresWireTests
{
    // --- backend messages (server to proxy, during login) ------------------------------------------

    [Fact]
    public async Task The_backend_reader_returns_one_whole_message_at_a_time_and_nothing_past_it()
    {
        var first = Message('S', "server_version\u000015.0\u0000");
        var second = Message('Z', "I");
        using var stream = new MemoryStream([.. first, .. second, .. "trailing"u8]);
        var reader = new PostgresBackendReader(stream);

        var status = await reader.ReadAsync(CancellationToken.None);
        Assert.Equal((byte)'S', status.Type);
        Assert.Equal(first, status.Frame);
        Assert.Equal("server_version\u000015.0\u0000", Encoding.ASCII.GetString(status.Payload));
        Assert.Equal((long)first.Length, stream.Position);

        var ready = await reader.ReadAsync(CancellationToken.None);
        Assert.Equal((byte)'Z', ready.Type);
        Assert.Equal("I", Encoding.ASCII.GetString(ready.PayloadMemory.Span));
        // The splice starts on the raw stream after ReadyForQuery: nothing of it sits in the reader.
        Assert.Equal((long)(first.Length + second.Length), stream.Position);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    public async Task A_backend_message_split_across_reads_is_read_whole(int bytesPerRead)
    {
        var error = PostgresWire.ErrorResponse("FATAL", "28P01", "password authentication failed for user \"orders_app\"");
        var ok = PostgresWire.AuthenticationOk();
        using var stream = new TrickleStream([.. error, .. ok], bytesPerRead);
        var reader = new PostgresBackendReader(stream);

        var message = await reader.ReadAsync(CancellationToken.None);
        Assert.Equal(error, message.Frame);
        var fields = PostgresWire.ReadFields(message.Payload);
        Assert.Equal("28P01", fields['C']);
        Assert.Equal("password authentication failed for user \"orders_app\"", fields['M']);

        Assert.Equal(ok, (await reader.ReadAsync(CancellationToken.None)).Frame);
    }

    [Fact]
    public async Task An_empty_payload_is_a_valid_message()
    {
        using var stream = new MemoryStream(Message('I', string.Empty));

        var message = await new PostgresBackendReader(stream).ReadAsync(CancellationToken.None);

        Assert.Equal((byte)'I', message.Type);
        Assert.Equal(5, message.Frame.Length);
        Assert.True(message.Payload.IsEmpty);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(-5)]
    [InlineData(int.MinValue)]
    [InlineData(PostgresWire.MaxHandshakeMessageLength + 1)]
    [InlineData(int.MaxValue)]
    public async Task A_backend_length_below_4_or_past_the_handshake_bound_is_refused_before_reading_the_payload(int length)
    {
        var header = new byte[5 + 64];
        header[0] = (byte)'R';
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), length);
        using var stream = new MemoryStream(header);

        var ex = await Assert.ThrowsAsync<PostgresProtocolException>(() => new PostgresBackendReader(stream).ReadAsync(CancellationToken.None));

        Assert.Equal("08P01", ex.SqlState);
        Assert.Equal("the database server sent a message of invalid length " + length + " during login", ex.Message);
        // Refused on the header alone: no allocation of the claimed size, no read of what follows.
        Assert.Equal(5L, stream.Position);
    }

    [Fact]
    public async Task The_largest_allowed_backend_message_is_read()
    {
        var payload = new byte[PostgresWire.MaxHandshakeMessageLength - 4];
        payload.AsSpan().Fill((byte)'x');
        using var stream = new TrickleStream(PostgresWire.Message((byte)'N', payload), 64 * 1024);

        var message = await new PostgresBackendReader(stream).ReadAsync(CancellationToken.None);

        Assert.Equal(payload.Length, message.Payload.Length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(9)]
    public async Task A_server_that_closes_mid_message_is_a_connection_failure(int bytesBeforeClose)
    {
        var message = Message('R', "\u0000\u0000\u0000\u000a" + "SCRAM-SHA-256\u0000\u0000");
        using var stream = new MemoryStream(message[..bytesBeforeClose]);

        var ex = await Assert.ThrowsAsync<PostgresProtocolException>(() => new PostgresBackendReader(stream).ReadAsync(CancellationToken.None));

        Assert.Equal("08006", ex.SqlState);
        Assert.Equal("the database server closed the connection during login", ex.Message);
    }

    // --- the app's StartupMessage --------------------------------------------------------------------

    [Fact]
    public void Startup_parameters_are_read_in_order_with_the_protocol_minor_version()
    {
        var startup = Parse(
            PostgresWire.ProtocolVersion3 | 2,
            "user", "the-app", "database", "orders", "application_name", "orders-api", "options", "-c search_path=sales", "client_encoding", "UTF8");

        Assert.Equal(2, startup.MinorVersion);
        Assert.Equal(["user", "database", "application_name", "options", "client_encoding"], startup.Parameters.Select(p => p.Key));
        Assert.Equal("the-app", startup["user"]);
        Assert.Equal("-c search_path=sales", startup["options"]);
        Assert.Equal("orders", startup.Database);
        Assert.Null(startup["replication"]);
        Assert.Empty(startup.ProtocolOptions);
    }

    [Fact]
    public void Protocol_options_are_kept_apart_from_the_parameters()
    {
        var startup = Parse(PostgresWire.ProtocolVersion3, "_pq_.compression", "on", "user", "the-app", "_pq_.future", "1");

        Assert.Equal(["_pq_.compression", "_pq_.future"], startup.ProtocolOptions);
        Assert.Equal(["user"], startup.Parameters.Select(p => p.Key));
    }

    [Theory]
    [InlineData("orders", "the-app", "orders")]
    [InlineData(null, "the-app", "the-app")]
    [InlineData("", "the-app", "the-app")]
    [InlineData(null, "", null)]
    [InlineData(null, null, null)]
    public void The_database_is_the_one_named_else_the_user_name_as_the_server_decides(string? database, string? user, string? expected)
    {
        var parameters = new List<string>();
        if (user is not null)
        {
            parameters.AddRange(["user", user]);
        }

        if (database is not null)
        {
            parameters.AddRange(["database", database]);
        }

        Assert.Equal(expected, Parse(PostgresWire.ProtocolVersion3, [.. parameters]).Database);
    }

    [Fact]
    public void A_startup_message_split_at_every_byte_parses_the_same()
    {
        var payload = StartupPayload("user", "the-app", "database", "orders", "application_name", "naïve ☃ app");

        var whole = PostgresStartupMessage.TryParse(PostgresWire.ProtocolVersion3, new ReadOnlySequence<byte>(payload), out var wholeError);
        var split = PostgresStartupMessage.TryParse(PostgresWire.ProtocolVersion3, SegmentedSequence.BytewiseOf(payload), out var splitError);

        Assert.Null(wholeError);
        Assert.Null(splitError);
        Assert.NotNull(whole);
        Assert.NotNull(split);
        Assert.Equal(whole.Parameters, split.Parameters);
        Assert.Equal("naïve ☃ app", split["application_name"]);
    }

    [Fact]
    public void An_empty_parameter_list_parses_to_no_database()
    {
        var startup = PostgresStartupMessage.TryParse(PostgresWire.ProtocolVersion3, new ReadOnlySequence<byte>([0]), out var error);

        Assert.Null(error);
        Assert.NotNull(startup);
        Assert.Empty(startup.Parameters);
        Assert.Null(startup.Database);
    }

    public static TheoryData<byte[], string> MalformedStartups => new()
    {
        { [], "the startup message is not terminated" },
        { "user\0the-app\0"u8.ToArray(), "the startup message is not terminated" },
        { "user\0the-app"u8.ToArray(), "a startup parameter has no value" },
        { "user\0"u8.ToArray(), "a startup parameter has no value" },
        { "user\0a\0user\0b\0\0"u8.ToArray(), "startup parameter 'user' appears twice" },
        { [.. "user\0"u8, 0xC3, 0x28, 0, 0], "a startup parameter is not valid UTF-8" },
        { [.. "appl"u8, 0xFF, .. "\0x\0\0"u8], "a startup parameter is not valid UTF-8" },
        { "user\0the-app\0\0extra"u8.ToArray(), "the startup message has bytes after its terminator" },
    };

    [Theory]
    [MemberData(nameof(MalformedStartups))]
    public void A_malformed_startup_message_is_refused_with_its_reason(byte[] payload, string reason)
    {
        foreach (var sequence in new[] { new ReadOnlySequence<byte>(payload), SegmentedSequence.BytewiseOf(payload) })
        {
            var startup = PostgresStartupMessage.TryParse(PostgresWire.ProtocolVersion3, sequence, out var error);

            Assert.Null(startup);
            Assert.Equal(reason, error);
        }
    }

    // --- what the proxy writes ------------------------------------------------------------------------

    [Fact]
    public void Messages_the_proxy_writes_are_framed_as_the_protocol_documents()
    {
        // AuthenticationOk: 'R', length 8, request code 0.
        byte[] authenticationOk = [(byte)'R', 0, 0, 0, 8, 0, 0, 0, 0];
        Assert.Equal(authenticationOk, PostgresWire.AuthenticationOk());

        // BackendKeyData: 'K', length 12, process id, secret key (big-endian).
        byte[] backendKeyData = [(byte)'K', 0, 0, 0, 12, 0, 0, 0x10, 0x92, 0xFF, 0xFF, 0xFF, 0xFE];
        Assert.Equal(backendKeyData, PostgresWire.BackendKeyData(4242, -2));

        // An untyped startup-phase packet: the length counts itself and the code.
        byte[] cancelRequest = [0, 0, 0, 16, 0x04, 0xD2, 0x16, 0x2E, 0, 0, 0, 1, 0, 0, 0, 2];
        Assert.Equal(cancelRequest, PostgresWire.StartupPacket(PostgresWire.CancelRequestCode, [0, 0, 0, 1, 0, 0, 0, 2]));

        // NegotiateProtocolVersion: newest minor, count, then each unrecognised option as a C string.
        byte[] negotiate = [(byte)'v', 0, 0, 0, 29, 0, 0, 0, 0, 0, 0, 0, 1, .. "_pq_.compression"u8, 0];
        Assert.Equal(negotiate, PostgresWire.NegotiateProtocolVersion(0, ["_pq_.compression"]));
    }

    [Fact]
    public void An_error_response_carries_severity_sqlstate_and_message_and_reads_back()
    {
        var error = PostgresWire.ErrorResponse("FATAL", "57P03", "credential 'db' is unavailable: ünïcode");

        Assert.Equal((byte)'E', error[0]);
        Assert.Equal(error.Length - 1, BinaryPrimitives.ReadInt32BigEndian(error.AsSpan(1)));
        Assert.Equal(0, error[^1]);
        Assert.Equal(
            new Dictionary<char, string> { ['S'] = "FATAL", ['V'] = "FATAL", ['C'] = "57P03", ['M'] = "credential 'db' is unavailable: ünïcode" },
            PostgresWire.ReadFields(error.AsSpan(5)));
    }

    [Fact]
    public void Reading_fields_stops_at_an_unterminated_field()
    {
        Assert.Equal(
            new Dictionary<char, string> { ['C'] = "28000" },
            PostgresWire.ReadFields("C28000\0Mno terminator"u8));
    }

    private static PostgresStartupMessage Parse(int version, params string[] keysAndValues)
    {
        var startup = PostgresStartupMessage.TryParse(version, new ReadOnlySequence<byte>(StartupPayload(keysAndValues)), out var error);
        Assert.True(startup is not null, error);
        return startup;
    }

    private static byte[] StartupPayload(params string[] keysAndValues)
    {
        var payload = new List<byte>();
        foreach (var text in keysAndValues)
        {
            payload.AddRange(Encoding.UTF8.GetBytes(text));
            payload.Add(0);
        }

        payload.Add(0);
        return [.. payload];
    }

    private static byte[] Message(char type, string payload) => PostgresWire.Message((byte)type, Encoding.UTF8.GetBytes(payload));

    /// <summary>A read-only stream that hands out at most a few bytes per read, as a slow socket does.</summary>
    private sealed class TrickleStream(byte[] bytes, int bytesPerRead) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = Math.Min(Math.Min(bytesPerRead, buffer.Length), bytes.Length - _position);
            bytes.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            // Each read completes later, as a socket's would.
            await Task.Yield();
            return Read(buffer.Span);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
