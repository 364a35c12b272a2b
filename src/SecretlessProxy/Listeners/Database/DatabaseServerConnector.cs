using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;

namespace SecretlessProxy.Listeners.Database;

/// <summary>
/// The proxy's own connection to a database server: TCP, then TLS verified as the listener's
/// <c>Tls</c> settings say. How TLS is asked for (PostgreSQL's SSLRequest, MySQL's SSL request
/// packet, Redis's TLS from the first byte) is the kind's; the handshake and its checks are here.
/// </summary>
internal static class DatabaseServerConnector
{
    public static async Task<NetworkStream> ConnectAsync(DatabaseListenerSettings settings, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new DnsEndPoint(settings.Host, settings.Port), cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new DatabaseConnectException(AccessOutcome.UpstreamUnreachable, "could not connect to the database server " + settings.Host + ":" + settings.Port + " (" + ex.SocketErrorCode + ")");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// TLS over <paramref name="inner"/> (owned by the returned stream; disposed on failure), the
    /// server verified per <see cref="DatabaseListenerSettings.TlsMode"/>.
    /// </summary>
    public static async Task<SslStream> AuthenticateTlsAsync(Stream inner, DatabaseListenerSettings settings, CancellationToken cancellationToken)
    {
        var tls = new SslStream(inner, leaveInnerStreamOpen: false);
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
            return tls;
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw new DatabaseConnectException(AccessOutcome.UpstreamTlsFailed, "TLS with the database server " + settings.Host + ":" + settings.Port + " failed: " + ex.Message);
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
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
