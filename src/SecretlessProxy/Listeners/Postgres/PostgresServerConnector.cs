using SecretlessProxy.Core;
using SecretlessProxy.Listeners.Database;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// Opens the proxy's own connection to the database server: TCP, then TLS by the PostgreSQL
/// SSLRequest negotiation (a one-byte 'S' or 'N' answer before the TLS handshake), verified by
/// <see cref="DatabaseServerConnector"/> as the listener's Tls settings say. A server that declines
/// TLS when TLS is required is not used.
/// </summary>
internal static class PostgresServerConnector
{
    public static async Task<ServerConnection> ConnectAsync(DatabaseListenerSettings settings, CancellationToken cancellationToken)
    {
        Stream network;
        try
        {
            network = await DatabaseServerConnector.ConnectAsync(settings, cancellationToken).ConfigureAwait(false);
        }
        catch (DatabaseConnectException ex)
        {
            throw new PostgresProtocolException("08006", ex.Message, ex.Outcome);
        }

        try
        {
            if (settings.TlsMode == DatabaseTlsMode.Disable)
            {
                return new ServerConnection(network, null);
            }

            await network.WriteAsync(PostgresWire.StartupPacket(PostgresWire.SslRequestCode, []), cancellationToken).ConfigureAwait(false);
            var answer = new byte[1];
            try
            {
                await network.ReadExactlyAsync(answer, cancellationToken).ConfigureAwait(false);
            }
            catch (EndOfStreamException)
            {
                throw new PostgresProtocolException("08006", "the database server closed the connection when asked for TLS", AccessOutcome.UpstreamTlsFailed);
            }

            if (answer[0] != (byte)'S')
            {
                throw new PostgresProtocolException("08006", answer[0] == (byte)'N'
                    ? "the database server does not offer TLS, and the listener requires it (Tls Mode " + settings.TlsMode + ")"
                    : "the database server answered the TLS request with an unexpected byte", AccessOutcome.UpstreamTlsFailed);
            }

            var tls = await DatabaseServerConnector.AuthenticateTlsAsync(network, settings, cancellationToken).ConfigureAwait(false);
            return new ServerConnection(tls, tls.RemoteCertificate);
        }
        catch (DatabaseConnectException ex)
        {
            // AuthenticateTlsAsync disposed the connection.
            throw new PostgresProtocolException("08006", ex.Message, ex.Outcome);
        }
        catch
        {
            await network.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
