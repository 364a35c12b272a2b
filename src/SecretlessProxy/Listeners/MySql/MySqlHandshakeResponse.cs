using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// The app's HandshakeResponse41 (MySQL docs, "Protocol::HandshakeResponse41"), or its SSLRequest
/// (the same first 32 bytes, then TLS). The app's auth response is read past and never used: the
/// proxy does not accept a client's own password as a substitute for the listener's credential.
/// </summary>
internal sealed class MySqlHandshakeResponse
{
    /// <summary>capability flags (4), max packet size (4), collation (1), filler (23).</summary>
    public const int FixedLength = 32;

    private MySqlHandshakeResponse(MySqlCapabilities capabilities, uint maxPacketSize, byte collation, string user, string? schema, string? authPlugin, byte[]? connectionAttributes)
    {
        Capabilities = capabilities;
        MaxPacketSize = maxPacketSize;
        Collation = collation;
        User = user;
        Schema = schema;
        AuthPlugin = authPlugin;
        ConnectionAttributes = connectionAttributes;
    }

    public MySqlCapabilities Capabilities { get; }

    public uint MaxPacketSize { get; }

    public byte Collation { get; }

    /// <summary>The user name the app sent: recorded nowhere, replaced upstream by the credential's.</summary>
    public string User { get; }

    /// <summary>The database the app names (CLIENT_CONNECT_WITH_DB), or null.</summary>
    public string? Schema { get; }

    public string? AuthPlugin { get; }

    /// <summary>The app's connection attributes, key/value pairs of length-encoded strings, without the total length; passed on as they are.</summary>
    public byte[]? ConnectionAttributes { get; }

    /// <summary>Whether a packet of this payload is an SSLRequest: exactly the fixed part with CLIENT_SSL.</summary>
    public static bool IsSslRequest(ReadOnlySpan<byte> payload) =>
        payload.Length == FixedLength && ((MySqlCapabilities)BinaryPrimitives.ReadUInt32LittleEndian(payload)).HasFlag(MySqlCapabilities.Ssl);

    /// <summary>Parses a HandshakeResponse41; null with <paramref name="error"/> when malformed.</summary>
    public static MySqlHandshakeResponse? TryParse(ReadOnlySpan<byte> payload, out string error)
    {
        error = string.Empty;
        if (payload.Length < FixedLength)
        {
            error = payload.Length >= 2 && !((MySqlCapabilities)BinaryPrimitives.ReadUInt16LittleEndian(payload)).HasFlag(MySqlCapabilities.Protocol41)
                ? "the client speaks the pre-4.1 protocol"
                : "the handshake response is truncated";
            return null;
        }

        var capabilities = (MySqlCapabilities)BinaryPrimitives.ReadUInt32LittleEndian(payload);
        if (!capabilities.HasFlag(MySqlCapabilities.Protocol41))
        {
            error = "the client speaks the pre-4.1 protocol";
            return null;
        }

        var maxPacket = BinaryPrimitives.ReadUInt32LittleEndian(payload[4..]);
        var collation = payload[8];
        var offset = FixedLength;
        if (!MySqlWire.TryReadNullTerminated(payload, ref offset, out var user))
        {
            error = "the handshake response has no user name";
            return null;
        }

        // The auth response: skipped, never used.
        if (capabilities.HasFlag(MySqlCapabilities.PluginAuthLenencClientData))
        {
            if (!MySqlWire.TryReadLengthEncoded(payload, ref offset, out var length) || length > (ulong)(payload.Length - offset))
            {
                error = "the handshake response's auth data is truncated";
                return null;
            }

            offset += (int)length;
        }
        else if (capabilities.HasFlag(MySqlCapabilities.SecureConnection))
        {
            if (offset >= payload.Length || offset + 1 + payload[offset] > payload.Length)
            {
                error = "the handshake response's auth data is truncated";
                return null;
            }

            offset += 1 + payload[offset];
        }
        else if (!MySqlWire.TryReadNullTerminated(payload, ref offset, out _))
        {
            error = "the handshake response's auth data is truncated";
            return null;
        }

        string? schema = null;
        if (capabilities.HasFlag(MySqlCapabilities.ConnectWithDb) && offset < payload.Length)
        {
            if (!MySqlWire.TryReadNullTerminated(payload, ref offset, out var db))
            {
                error = "the handshake response's database name is not terminated";
                return null;
            }

            schema = db.Length == 0 ? null : db;
        }

        string? plugin = null;
        if (capabilities.HasFlag(MySqlCapabilities.PluginAuth) && offset < payload.Length)
        {
            if (!MySqlWire.TryReadNullTerminated(payload, ref offset, out var name))
            {
                error = "the handshake response's auth plugin name is not terminated";
                return null;
            }

            plugin = name;
        }

        byte[]? attributes = null;
        if (capabilities.HasFlag(MySqlCapabilities.ConnectAttrs) && offset < payload.Length)
        {
            if (!MySqlWire.TryReadLengthEncoded(payload, ref offset, out var length) || length > (ulong)(payload.Length - offset))
            {
                error = "the handshake response's connection attributes are truncated";
                return null;
            }

            var block = payload.Slice(offset, (int)length);
            if (!AttributesWellFormed(block))
            {
                error = "the handshake response's connection attributes are malformed";
                return null;
            }

            attributes = block.ToArray();
        }

        return new MySqlHandshakeResponse(capabilities, maxPacket, collation, user, schema, plugin, attributes);
    }

    private static bool AttributesWellFormed(ReadOnlySpan<byte> block)
    {
        var offset = 0;
        while (offset < block.Length)
        {
            if (!MySqlWire.TryReadLengthEncoded(block, ref offset, out var length) || length > (ulong)(block.Length - offset))
            {
                return false;
            }

            offset += (int)length;
        }

        return true;
    }

    /// <summary>
    /// The proxy's HandshakeResponse41 to the server: the credential's user, the auth response for
    /// <paramref name="plugin"/>, the app's database, collation, maximum packet size and connection attributes.
    /// </summary>
    public static byte[] Upstream(byte sequence, MySqlCapabilities capabilities, uint maxPacketSize, byte collation, string user, ReadOnlySpan<byte> authResponse, string? schema, string plugin, byte[]? attributes)
    {
        var payload = new ArrayBufferWriter<byte>(256);
        var head = new byte[FixedLength];
        BinaryPrimitives.WriteUInt32LittleEndian(head, (uint)capabilities);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(4), maxPacketSize);
        head[8] = collation;
        payload.Write(head);
        MySqlWire.WriteNullTerminated(payload, user);
        if (capabilities.HasFlag(MySqlCapabilities.PluginAuthLenencClientData))
        {
            MySqlWire.WriteLengthEncoded(payload, (ulong)authResponse.Length);
        }
        else
        {
            payload.Write<byte>([(byte)authResponse.Length]);
        }

        payload.Write(authResponse);
        if (capabilities.HasFlag(MySqlCapabilities.ConnectWithDb))
        {
            MySqlWire.WriteNullTerminated(payload, schema ?? string.Empty);
        }

        MySqlWire.WriteNullTerminated(payload, plugin);
        if (capabilities.HasFlag(MySqlCapabilities.ConnectAttrs))
        {
            var block = attributes ?? [];
            MySqlWire.WriteLengthEncoded(payload, (ulong)block.Length);
            payload.Write(block);
        }

        return MySqlWire.Packet(sequence, payload.WrittenSpan);
    }

    /// <summary>The SSLRequest to the server: the fixed part only, with CLIENT_SSL.</summary>
    public static byte[] SslRequest(byte sequence, MySqlCapabilities capabilities, uint maxPacketSize, byte collation)
    {
        var head = new byte[FixedLength];
        BinaryPrimitives.WriteUInt32LittleEndian(head, (uint)(capabilities | MySqlCapabilities.Ssl));
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(4), maxPacketSize);
        head[8] = collation;
        return MySqlWire.Packet(sequence, head);
    }

    public override string ToString() => "HandshakeResponse41(" + Encoding.UTF8.GetByteCount(User) + "-byte user, schema " + (Schema ?? "(none)") + ")";
}
