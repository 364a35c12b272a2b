using SecretlessProxy.Core;
using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// Framing of the PostgreSQL v3 protocol (PostgreSQL docs, "Message Formats"): a type byte and a
/// big-endian length that counts itself, except the untyped startup-phase packets.
/// </summary>
internal static class PostgresWire
{
    /// <summary>The scheme policy sees for a PostgreSQL login (<see cref="DatabaseDestination"/>).</summary>
    public const string Scheme = "postgres";

    /// <summary>OpenTelemetry's <c>db.system</c> name for PostgreSQL.</summary>
    public const string DatabaseSystem = "postgresql";

    /// <summary>Protocol 3.0 in a StartupMessage: major 3 in the high 16 bits.</summary>
    public const int ProtocolVersion3 = 3 << 16;

    public const int SslRequestCode = 80877103;
    public const int GssEncRequestCode = 80877104;
    public const int CancelRequestCode = 80877102;

    /// <summary>The server's own limit for a startup packet (MAX_STARTUP_PACKET_LENGTH in postmaster.c).</summary>
    public const int MaxStartupPacketLength = 10000;

    /// <summary>
    /// Bound on one backend message read during login (authentication requests, ParameterStatus,
    /// notices). Past login bytes are spliced and nothing is parsed or buffered whole.
    /// </summary>
    public const int MaxHandshakeMessageLength = 1 << 20;

    public const byte AuthenticationType = (byte)'R';
    public const byte ErrorResponseType = (byte)'E';
    public const byte NoticeResponseType = (byte)'N';
    public const byte ParameterStatusType = (byte)'S';
    public const byte BackendKeyDataType = (byte)'K';
    public const byte ReadyForQueryType = (byte)'Z';
    public const byte NegotiateProtocolVersionType = (byte)'v';
    public const byte PasswordMessageType = (byte)'p';

    /// <summary>A typed message: type, length (4 + payload), payload.</summary>
    public static byte[] Message(byte type, ReadOnlySpan<byte> payload)
    {
        var message = new byte[5 + payload.Length];
        message[0] = type;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + payload.Length);
        payload.CopyTo(message.AsSpan(5));
        return message;
    }

    /// <summary>An untyped startup-phase packet: length (8 + payload), code, payload.</summary>
    public static byte[] StartupPacket(int code, ReadOnlySpan<byte> payload)
    {
        var packet = new byte[8 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), code);
        payload.CopyTo(packet.AsSpan(8));
        return packet;
    }

    public static byte[] AuthenticationOk()
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(payload, 0);
        return Message(AuthenticationType, payload);
    }

    public static byte[] BackendKeyData(int processId, int secretKey)
    {
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(payload, processId);
        BinaryPrimitives.WriteInt32BigEndian(payload[4..], secretKey);
        return Message(BackendKeyDataType, payload);
    }

    /// <summary>
    /// NegotiateProtocolVersion: the newest minor version the proxy speaks (0) and the protocol
    /// options (<c>_pq_.*</c>) it did not recognise, as a server answers a newer client.
    /// </summary>
    public static byte[] NegotiateProtocolVersion(int newestMinor, IReadOnlyList<string> unrecognised)
    {
        var payload = new ArrayBufferWriter<byte>();
        WriteInt32(payload, newestMinor);
        WriteInt32(payload, unrecognised.Count);
        foreach (var option in unrecognised)
        {
            WriteCString(payload, option);
        }

        return Message(NegotiateProtocolVersionType, payload.WrittenSpan);
    }

    /// <summary>An ErrorResponse with severity, SQLSTATE and message fields.</summary>
    public static byte[] ErrorResponse(string severity, string sqlState, string message)
    {
        var payload = new ArrayBufferWriter<byte>();
        payload.Write("S"u8);
        WriteCString(payload, severity);
        payload.Write("V"u8);
        WriteCString(payload, severity);
        payload.Write("C"u8);
        WriteCString(payload, sqlState);
        payload.Write("M"u8);
        WriteCString(payload, message);
        payload.Write<byte>([0]);
        return Message(ErrorResponseType, payload.WrittenSpan);
    }

    /// <summary>Reads the fields of an ErrorResponse or NoticeResponse payload (field type → value).</summary>
    public static Dictionary<char, string> ReadFields(ReadOnlySpan<byte> payload)
    {
        var fields = new Dictionary<char, string>();
        while (payload.Length > 0 && payload[0] != 0)
        {
            var type = (char)payload[0];
            payload = payload[1..];
            var end = payload.IndexOf((byte)0);
            if (end < 0)
            {
                break;
            }

            fields[type] = Encoding.UTF8.GetString(payload[..end]);
            payload = payload[(end + 1)..];
        }

        return fields;
    }

    public static void WriteCString(IBufferWriter<byte> writer, string value)
    {
        var span = writer.GetSpan(Encoding.UTF8.GetMaxByteCount(value.Length) + 1);
        var written = Encoding.UTF8.GetBytes(value, span);
        span[written] = 0;
        writer.Advance(written + 1);
    }

    public static void WriteInt32(IBufferWriter<byte> writer, int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(writer.GetSpan(4), value);
        writer.Advance(4);
    }
}
