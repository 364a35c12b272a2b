using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// The framing and the few packets the proxy writes itself (MySQL docs, "MySQL Packets",
/// "Protocol::HandshakeV10", "OK_Packet", "ERR_Packet"): every packet is a 3-byte little-endian
/// payload length, a 1-byte sequence id and the payload.
/// </summary>
internal static class MySqlWire
{
    public const string Scheme = "mysql";
    public const int HeaderLength = 4;

    /// <summary>A payload of this length continues in the next packet (MySQL docs, "Sending More Than 16Mb").</summary>
    public const int MaxPayloadLength = 0xFFFFFF;

    /// <summary>A login packet larger than this is not a login: the app's and the server's handshake packets are a few hundred bytes.</summary>
    public const int MaxHandshakePacketLength = 64 * 1024;

    public const byte OkHeader = 0x00;
    public const byte AuthMoreDataHeader = 0x01;
    public const byte EofOrSwitchHeader = 0xFE;
    public const byte ErrHeader = 0xFF;

    public const byte ComQuit = 0x01;
    public const byte ComQuery = 0x03;
    public const byte ComChangeUser = 0x11;
    public const byte ComResetConnection = 0x1F;

    /// <summary>utf8mb4_general_ci: a collation id both MySQL and MariaDB know.</summary>
    public const byte DefaultCollation = 45;

    public const ushort StatusAutocommit = 0x0002;

    public const string NativePassword = "mysql_native_password";
    public const string CachingSha2Password = "caching_sha2_password";
    public const string Sha256Password = "sha256_password";
    public const string ClearPassword = "mysql_clear_password";
    public const string Ed25519 = "client_ed25519";

    // Error numbers the proxy sends (MySQL docs, "Server Error Message Reference" and "Client Error
    // Message Reference"); the client-range ones are what a client reports for the same failure.
    public const ushort ErAccessDenied = 1045;
    public const ushort ErHandshake = 1043;
    public const ushort ErHostNotPrivileged = 1130;
    public const ushort ErNotSupportedAuthMode = 1251;
    public const ushort ErSpecificAccessDenied = 1227;
    /// <summary>
    /// ER_UNKNOWN_ERROR: a server-range code for a refusal that is the proxy's own (no credential or
    /// identity now). libmariadb takes an ERR packet with a client-range code (2000-2999) from a
    /// server for a malformed packet and hides the message.
    /// </summary>
    public const ushort ErUnknownError = 1105;

    /// <summary>
    /// ER_CONNECT_TO_FOREIGN_DATA_SOURCE: the proxy could not reach the server or set up TLS with it
    /// (sent with SQLSTATE 08S01, a communication failure, so pools treat it as one). Not the client
    /// codes 2003/2026 a direct connection reports: those come from the client library itself, and
    /// libmariadb turns them into "malformed packet" when a server sends them, hiding the reason.
    /// </summary>
    public const ushort ErConnectToForeignDataSource = 1429;

    /// <summary>ER_NET_READ_ERROR (08S01): the server broke off the login; server-range for the same reason.</summary>
    public const ushort ErNetReadError = 1158;

    /// <summary>One packet: header and payload.</summary>
    public static byte[] Packet(byte sequence, ReadOnlySpan<byte> payload)
    {
        if (payload.Length >= MaxPayloadLength)
        {
            throw new ArgumentOutOfRangeException(nameof(payload), "a handshake packet is never this large");
        }

        var packet = new byte[HeaderLength + payload.Length];
        WriteHeader(packet, payload.Length, sequence);
        payload.CopyTo(packet.AsSpan(HeaderLength));
        return packet;
    }

    public static void WriteHeader(Span<byte> header, int payloadLength, byte sequence)
    {
        header[0] = (byte)payloadLength;
        header[1] = (byte)(payloadLength >> 8);
        header[2] = (byte)(payloadLength >> 16);
        header[3] = sequence;
    }

    public static int ReadLength(ReadOnlySpan<byte> header) => header[0] | (header[1] << 8) | (header[2] << 16);

    /// <summary>
    /// An ERR packet (MySQL docs, "ERR_Packet", with CLIENT_PROTOCOL_41: '#' and a 5-character
    /// SQLSTATE before the message). The message must hold no secret.
    /// </summary>
    public static byte[] Error(byte sequence, ushort code, string sqlState, string message)
    {
        var text = Encoding.UTF8.GetBytes(message);
        var payload = new byte[1 + 2 + 1 + 5 + text.Length];
        payload[0] = ErrHeader;
        BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(1), code);
        payload[3] = (byte)'#';
        Encoding.ASCII.GetBytes(sqlState.AsSpan(0, 5), payload.AsSpan(4, 5));
        text.CopyTo(payload, 9);
        return Packet(sequence, payload);
    }

    /// <summary>A plain OK packet: no rows, no insert id, the given status, no warnings.</summary>
    public static byte[] Ok(byte sequence, ushort status = StatusAutocommit) =>
        Packet(sequence, [OkHeader, 0, 0, (byte)status, (byte)(status >> 8), 0, 0]);

    /// <summary>
    /// The proxy's own HandshakeV10 toward the app. It asks for mysql_native_password with a fresh
    /// scramble only because clients expect a method; whatever the app answers is discarded, since
    /// the proxy logs in upstream with the listener's credential.
    /// </summary>
    public static byte[] Greeting(string serverVersion, uint connectionId, ReadOnlySpan<byte> scramble, MySqlCapabilities capabilities, byte collation, ushort status)
    {
        if (scramble.Length != 20)
        {
            throw new ArgumentException("the scramble is 20 bytes", nameof(scramble));
        }

        var payload = new ArrayBufferWriter<byte>(128);
        payload.Write<byte>([10]);
        WriteNullTerminated(payload, serverVersion);
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, connectionId);
        payload.Write(word);
        payload.Write(scramble[..8]);
        payload.Write<byte>([0]);
        var caps = (uint)capabilities;
        payload.Write<byte>([(byte)caps, (byte)(caps >> 8), collation, (byte)status, (byte)(status >> 8), (byte)(caps >> 16), (byte)(caps >> 24)]);
        payload.Write<byte>([21]);
        payload.Write(new byte[10]);
        payload.Write(scramble[8..]);
        payload.Write<byte>([0]);
        WriteNullTerminated(payload, NativePassword);
        return Packet(0, payload.WrittenSpan);
    }

    public static void WriteNullTerminated(IBufferWriter<byte> writer, string value)
    {
        writer.Write(Encoding.UTF8.GetBytes(value));
        writer.Write<byte>([0]);
    }

    /// <summary>A length-encoded integer (MySQL docs, "Protocol::LengthEncodedInteger").</summary>
    public static void WriteLengthEncoded(IBufferWriter<byte> writer, ulong value)
    {
        Span<byte> bytes = stackalloc byte[9];
        int length;
        if (value < 251)
        {
            bytes[0] = (byte)value;
            length = 1;
        }
        else if (value < 1 << 16)
        {
            bytes[0] = 0xFC;
            BinaryPrimitives.WriteUInt16LittleEndian(bytes[1..], (ushort)value);
            length = 3;
        }
        else if (value < 1 << 24)
        {
            bytes[0] = 0xFD;
            bytes[1] = (byte)value;
            bytes[2] = (byte)(value >> 8);
            bytes[3] = (byte)(value >> 16);
            length = 4;
        }
        else
        {
            bytes[0] = 0xFE;
            BinaryPrimitives.WriteUInt64LittleEndian(bytes[1..], value);
            length = 9;
        }

        writer.Write(bytes[..length]);
    }

    /// <summary>Reads a length-encoded integer at <paramref name="offset"/>; false when it does not fit or is the NULL/ERR marker.</summary>
    public static bool TryReadLengthEncoded(ReadOnlySpan<byte> data, ref int offset, out ulong value)
    {
        value = 0;
        if (offset >= data.Length)
        {
            return false;
        }

        var first = data[offset];
        var size = first switch
        {
            < 251 => 0,
            0xFC => 2,
            0xFD => 3,
            0xFE => 8,
            _ => -1,
        };
        if (size < 0 || offset + 1 + size > data.Length)
        {
            return false;
        }

        if (size == 0)
        {
            value = first;
        }
        else
        {
            for (var i = size - 1; i >= 0; i--)
            {
                value = (value << 8) | data[offset + 1 + i];
            }
        }

        offset += 1 + size;
        return true;
    }

    /// <summary>Reads a NUL-terminated string at <paramref name="offset"/>; false when there is no NUL.</summary>
    public static bool TryReadNullTerminated(ReadOnlySpan<byte> data, ref int offset, out string value)
    {
        value = string.Empty;
        if (offset > data.Length)
        {
            return false;
        }

        var end = data[offset..].IndexOf((byte)0);
        if (end < 0)
        {
            return false;
        }

        value = Encoding.UTF8.GetString(data.Slice(offset, end));
        offset += end + 1;
        return true;
    }
}
