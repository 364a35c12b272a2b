using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// Opens the proxy's own connection to the database server: TCP, then TLS by the PostgreSQL
/// SSLRequest negotiation (a one-byte 'S' or 'N' answer before the TLS handshake), verified as the
/// listener's Tls settings say. A server that declines TLS when TLS is required is not used.
/// </summary>
internal static class PostgresServerConnector
{
    public static async Task<ServerConnection> ConnectAsync(DatabaseListenerSettings settings, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            try
            {
                await socket.ConnectAsync(new DnsEndPoint(settings.Host, settings.Port), cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                throw new PostgresProtocolException("08006", "could not connect to the database server " + settings.Host + ":" + settings.Port + " (" + ex.SocketErrorCode + ")", AccessOutcome.UpstreamUnreachable);
            }

            var network = new NetworkStream(socket, ownsSocket: true);
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
                await network.DisposeAsync().ConfigureAwait(false);
                throw new PostgresProtocolException("08006", "the database server closed the connection when asked for TLS", AccessOutcome.UpstreamTlsFailed);
            }

            if (answer[0] != (byte)'S')
            {
                await network.DisposeAsync().ConfigureAwait(false);
                throw new PostgresProtocolException("08006", answer[0] == (byte)'N'
                    ? "the database server does not offer TLS, and the listener requires it (Tls Mode " + settings.TlsMode + ")"
                    : "the database server answered the TLS request with an unexpected byte", AccessOutcome.UpstreamTlsFailed);
            }

            var tls = new SslStream(network, leaveInnerStreamOpen: false);
            try
            {
                await tls.AuthenticateAsClientAsync(
                    new SslClientAuthenticationOptions
                    {
                        TargetHost = settings.ServerName,
                        RemoteCertificateValidationCallback = settings.TlsMode == DatabaseTlsMode.Require ? AcceptAny : null,
                        CertificateChainPolicy = ChainPolicyFor(settings),
                        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    },
                    cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                await tls.DisposeAsync().ConfigureAwait(false);
                throw new PostgresProtocolException("08006", "TLS with the database server " + settings.Host + ":" + settings.Port + " failed: " + ex.Message, AccessOutcome.UpstreamTlsFailed);
            }

            return new ServerConnection(tls, tls.RemoteCertificate);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Require: encryption against passive listeners only, as libpq's sslmode=require without a root cert.</summary>
    private static bool AcceptAny(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) => true;

    /// <summary>
    /// With a CaFile, the server's chain must end at one of its CAs, as libpq's sslrootcert: the
    /// database's own CA is pinned rather than added to every public root. SslStream builds the chain
    /// once with this policy (a validation callback would build it a second time per connection);
    /// the name is still checked against <see cref="DatabaseListenerSettings.ServerName"/>.
    /// </summary>
    private static X509ChainPolicy? ChainPolicyFor(DatabaseListenerSettings settings)
    {
        if (settings.TlsMode != DatabaseTlsMode.VerifyFull || settings.TrustedCas is not { Count: > 0 } trust)
        {
            return null;
        }

        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.AddRange(trust);
        return policy;
    }
}

/// <summary>The proxy's connection to the database server, and its certificate when TLS is on (for SCRAM channel binding).</summary>
internal readonly record struct ServerConnection(Stream Stream, X509Certificate? ServerCertificate);
