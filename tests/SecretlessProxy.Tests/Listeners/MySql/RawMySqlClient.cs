using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SecretlessProxy.Listeners.MySql;
using Xunit;

namespace SecretlessProxy.Tests.Listeners.MySql;

/// <summary>
/// A minimal MySQL client for what real clients do not expose (COM_CHANGE_USER, raw handshakes): it
/// reads the greeting, answers with a HandshakeResponse41 holding no password, and sends packets.
/// </summary>
internal sealed class RawMySqlClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;

    private RawMySqlClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public NetworkStream Stream => _stream;

    public static async Task<RawMySqlClient> ConnectAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        return new RawMySqlClient(tcp);
    }

    /// <summary>Reads the greeting, logs in as <paramref name="user"/> with no password, and returns the reply's payload (OK or ERR).</summary>
    public async Task<byte[]> LogInAsync(string user, string? schema, byte[]? attributes = null)
    {
        var (_, greeting) = await ReadAsync();
        Assert.Equal(10, greeting[0]);
        var caps = MySqlCapabilities.Protocol41 | MySqlCapabilities.SecureConnection | MySqlCapabilities.PluginAuth | MySqlCapabilities.LongPassword
            | MySqlCapabilities.Transactions | MySqlCapabilities.MultiResults | (schema is null ? MySqlCapabilities.None : MySqlCapabilities.ConnectWithDb) | (attributes is null ? MySqlCapabilities.None : MySqlCapabilities.ConnectAttrs);
        // An auth response the app computed from a password of its own: the proxy must not use it.
        await SendAsync(MySqlHandshakeResponse.Upstream(1, caps, 1 << 24, 45, user, MySqlScramble.Native("the-apps-own-password", new byte[20]), schema, MySqlWire.NativePassword, attributes));
        var (sequence, reply) = await ReadAsync();
        Assert.Equal(2, sequence);
        return reply;
    }

    public async Task SendAsync(byte[] packet)
    {
        await _stream.WriteAsync(packet);
        await _stream.FlushAsync();
    }

    /// <summary>A COM_QUERY, and every packet of its answer until the last EOF/OK/ERR, concatenated as text.</summary>
    public async Task<string> QueryAsync(string sql)
    {
        await SendAsync(MySqlWire.Packet(0, [MySqlWire.ComQuery, .. Encoding.UTF8.GetBytes(sql)]));
        var text = new StringBuilder();
        var eofs = 0;
        while (true)
        {
            var (_, payload) = await ReadAsync();
            text.Append(Encoding.UTF8.GetString(payload)).Append('|');
            if (payload[0] == MySqlWire.ErrHeader || (payload[0] == MySqlWire.OkHeader && text.Length == payload.Length + 1))
            {
                return text.ToString();
            }

            // Without CLIENT_DEPRECATE_EOF a result set is columns, EOF, rows, EOF.
            if (payload[0] == MySqlWire.EofOrSwitchHeader && payload.Length < 9 && ++eofs == 2)
            {
                return text.ToString();
            }
        }
    }

    public async Task<(byte Sequence, byte[] Payload)> ReadAsync()
    {
        var header = new byte[4];
        await _stream.ReadExactlyAsync(header);
        var payload = new byte[MySqlWire.ReadLength(header)];
        await _stream.ReadExactlyAsync(payload);
        return (header[3], payload);
    }

    /// <summary>The error number of an ERR payload.</summary>
    public static ushort ErrorCode(byte[] payload)
    {
        Assert.Equal(MySqlWire.ErrHeader, payload[0]);
        return BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(1));
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
