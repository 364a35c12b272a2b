using System.Buffers.Binary;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// Reads whole backend messages from the server during login. It reads exactly one message at a
/// time (header, then payload), so when login ends nothing past ReadyForQuery sits in a buffer of
/// ours and the splice can start on the raw stream.
/// </summary>
internal sealed class PostgresBackendReader
{
    private readonly Stream _stream;
    private readonly byte[] _header = new byte[5];

    public PostgresBackendReader(Stream stream)
    {
        _stream = stream;
    }

    /// <summary>The next message; the returned frame holds type, length and payload as received.</summary>
    /// <exception cref="PostgresProtocolException">Malformed or oversized, or the server closed the connection.</exception>
    public async Task<BackendMessage> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _stream.ReadExactlyAsync(_header, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            throw new PostgresProtocolException("08006", "the database server closed the connection during login");
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(_header.AsSpan(1));
        if (length < 4 || length > PostgresWire.MaxHandshakeMessageLength)
        {
            throw new PostgresProtocolException("08P01", "the database server sent a message of invalid length " + length + " during login");
        }

        var frame = new byte[1 + length];
        _header.CopyTo(frame, 0);
        try
        {
            await _stream.ReadExactlyAsync(frame.AsMemory(5), cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            throw new PostgresProtocolException("08006", "the database server closed the connection during login");
        }

        return new BackendMessage(frame);
    }
}

/// <summary>One backend message as framed on the wire.</summary>
internal readonly struct BackendMessage
{
    public BackendMessage(byte[] frame)
    {
        Frame = frame;
    }

    public byte[] Frame { get; }

    public byte Type => Frame[0];

    public ReadOnlySpan<byte> Payload => Frame.AsSpan(5);

    public ReadOnlyMemory<byte> PayloadMemory => Frame.AsMemory(5);
}
