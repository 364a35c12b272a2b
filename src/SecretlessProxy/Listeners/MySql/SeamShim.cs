// TEMPORARY: stands in for the lead's "Database listener seam" until it lands on main; deleted on rebase.
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Listeners.Postgres;

namespace SecretlessProxy.Listeners.Database;

/// <summary>Shim.</summary>
internal sealed class DatabaseConnectException : Exception
{
    public DatabaseConnectException(AccessOutcome outcome, string message)
        : base(message) => Outcome = outcome;

    public AccessOutcome Outcome { get; }
}

/// <summary>Shim.</summary>
internal static class DatabaseServerConnector
{
    public static async Task<NetworkStream> ConnectAsync(DatabaseListenerSettings settings, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new DnsEndPoint(settings.Host, settings.Port), cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new DatabaseConnectException(AccessOutcome.UpstreamUnreachable, "could not connect to the database server " + settings.Host + ":" + settings.Port + " (" + ex.SocketErrorCode + ")");
        }

        return new NetworkStream(socket, ownsSocket: true);
    }

    public static async Task<SslStream> AuthenticateTlsAsync(Stream inner, DatabaseListenerSettings settings, CancellationToken cancellationToken)
    {
        var tls = new SslStream(inner, leaveInnerStreamOpen: false);
        X509ChainPolicy? policy = null;
        if (settings.TlsMode == DatabaseTlsMode.VerifyFull && settings.TrustedCas is { Count: > 0 } trust)
        {
            policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            policy.CustomTrustStore.AddRange(trust);
        }

        try
        {
            await tls.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = settings.ServerName,
                    RemoteCertificateValidationCallback = settings.TlsMode == DatabaseTlsMode.Require ? (_, _, _, _) => true : null,
                    CertificateChainPolicy = policy,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw new DatabaseConnectException(AccessOutcome.UpstreamTlsFailed, "TLS with the database server " + settings.Host + ":" + settings.Port + " failed: " + ex.Message);
        }

        return tls;
    }
}
