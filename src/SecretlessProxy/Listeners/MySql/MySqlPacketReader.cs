namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// Reads whole packets from the server connection during the login, bounded by
/// <see cref="MySqlWire.MaxHandshakePacketLength"/> (a peer that sends more is not speaking the login).
/// </summary>
internal sealed class MySqlPacketReader
{
    private readonly Stream _stream;
    private readonly byte[] _header = new byte[MySqlWire.HeaderLength];

    public MySqlPacketReader(Stream stream) => _stream = stream;

    /// <summary>The next packet's sequence id and payload.</summary>
    /// <exception cref="MySqlProtocolException">The server closed the connection or sent an oversized packet.</exception>
    public async Task<(byte Sequence, byte[] Payload)> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _stream.ReadExactlyAsync(_header, cancellationToken).ConfigureAwait(false);
            var length = MySqlWire.ReadLength(_header);
            if (length > MySqlWire.MaxHandshakePacketLength)
            {
                throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server sent a " + length + "-byte packet during the login", Core.AccessOutcome.UpstreamFailed);
            }

            var payload = new byte[length];
            await _stream.ReadExactlyAsync(payload, cancellationToken).ConfigureAwait(false);
            return (_header[3], payload);
        }
        catch (EndOfStreamException)
        {
            throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server closed the connection during the login", Core.AccessOutcome.UpstreamFailed);
        }
    }
}
