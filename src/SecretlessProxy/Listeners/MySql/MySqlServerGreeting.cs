using System.Buffers.Binary;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>The server's HandshakeV10 (MySQL docs, "Protocol::HandshakeV10"), as far as the proxy's login needs it.</summary>
internal sealed class MySqlServerGreeting
{
    private MySqlServerGreeting(string serverVersion, uint connectionId, MySqlCapabilities capabilities, byte collation, ushort status, byte[] scramble, string authPlugin)
    {
        ServerVersion = serverVersion;
        ConnectionId = connectionId;
        Capabilities = capabilities;
        Collation = collation;
        Status = status;
        Scramble = scramble;
        AuthPlugin = authPlugin;
    }

    public string ServerVersion { get; }

    /// <summary>The server's thread id for this connection: what <c>KILL QUERY</c> names.</summary>
    public uint ConnectionId { get; }

    public MySqlCapabilities Capabilities { get; }

    public byte Collation { get; }

    public ushort Status { get; }

    /// <summary>The nonce (auth-plugin-data, both parts, without the trailing NUL).</summary>
    public byte[] Scramble { get; }

    public string AuthPlugin { get; }

    /// <summary>MariaDB says so in its version string (<c>10.11.6-MariaDB</c>, <c>5.5.5-10.11.6-MariaDB</c>).</summary>
    public bool IsMariaDb => ServerVersion.Contains("MariaDB", StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses the greeting; null with <paramref name="error"/> when it is not a HandshakeV10 the proxy can use.</summary>
    public static MySqlServerGreeting? TryParse(ReadOnlySpan<byte> payload, out string error)
    {
        error = string.Empty;
        if (payload.Length < 1 || payload[0] != 10)
        {
            error = "the database server's greeting is not protocol version 10";
            return null;
        }

        var offset = 1;
        if (!MySqlWire.TryReadNullTerminated(payload, ref offset, out var version) || payload.Length < offset + 4 + 8 + 1 + 2)
        {
            error = "the database server's greeting is truncated";
            return null;
        }

        var connectionId = BinaryPrimitives.ReadUInt32LittleEndian(payload[offset..]);
        offset += 4;
        var part1 = payload.Slice(offset, 8);
        offset += 9;
        uint caps = BinaryPrimitives.ReadUInt16LittleEndian(payload[offset..]);
        offset += 2;
        byte collation = MySqlWire.DefaultCollation;
        ushort status = 0;
        var authDataLength = 0;
        if (payload.Length >= offset + 16)
        {
            collation = payload[offset];
            status = BinaryPrimitives.ReadUInt16LittleEndian(payload[(offset + 1)..]);
            caps |= (uint)BinaryPrimitives.ReadUInt16LittleEndian(payload[(offset + 3)..]) << 16;
            authDataLength = payload[offset + 5];
            offset += 16;
        }

        var capabilities = (MySqlCapabilities)caps;
        if (!capabilities.HasFlag(MySqlCapabilities.Protocol41) || !capabilities.HasFlag(MySqlCapabilities.SecureConnection))
        {
            error = "the database server does not speak the 4.1 protocol with secure authentication";
            return null;
        }

        // auth-plugin-data-part-2: max(13, length - 8) bytes, the last a NUL the nonce does not include.
        var part2Length = Math.Max(13, authDataLength - 8);
        if (payload.Length < offset + part2Length)
        {
            error = "the database server's greeting is truncated";
            return null;
        }

        var part2 = payload.Slice(offset, part2Length);
        offset += part2Length;
        var nul = part2.IndexOf((byte)0);
        if (nul >= 0)
        {
            part2 = part2[..nul];
        }

        var scramble = new byte[8 + part2.Length];
        part1.CopyTo(scramble);
        part2.CopyTo(scramble.AsSpan(8));

        var plugin = MySqlWire.NativePassword;
        if (capabilities.HasFlag(MySqlCapabilities.PluginAuth) && offset < payload.Length)
        {
            // Some servers omit the final NUL (a known MySQL 5.5 quirk): the name runs to the end.
            var end = payload[offset..].IndexOf((byte)0);
            plugin = System.Text.Encoding.UTF8.GetString(end < 0 ? payload[offset..] : payload.Slice(offset, end));
        }

        return new MySqlServerGreeting(version, connectionId, capabilities, collation, status, scramble, plugin);
    }
}
