using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Certificates;
using SecretlessProxy.Core;

namespace SecretlessProxy.Listeners.Database;

/// <summary>
/// The app's side of a database listener with <c>AcceptTls</c>: once the protocol's own TLS request
/// has been answered (PostgreSQL's 'S'; MySQL has no answer), the proxy completes the handshake with
/// a leaf from the local CA and the connection's transport becomes the decrypted stream.
/// </summary>
internal static class DatabaseAppTls
{
    public static async Task AcceptAsync(ConnectionContext connection, DatabaseListenerSettings db, LeafCertificateCache leaves, Action<SslStream> onTls, Action<LeafCertificateLease> onLease, CancellationToken cancellationToken)
    {
        var tls = new SslStream(new DuplexPipeStream(connection.Transport), leaveInnerStreamOpen: false);
        onTls(tls);
        var local = (connection.LocalEndPoint as System.Net.IPEndPoint)?.Address.ToString() ?? "localhost";
        await tls.AuthenticateAsServerAsync(
            (_, hello, _, _) =>
            {
                // The name the app verifies: "localhost" or the database's own name (an app whose
                // hosts file points it here), else the listener's address. Only those names, never
                // the app's own SNI text, reach the local CA.
                var name = hello.ServerName is { Length: > 0 } sni && HostName.TryNormalizeServerName(sni, out var named) &&
                    (named == "localhost" || (HostName.TryNormalize(db.Host, out var dbHost) && named == dbHost)) ? named : local;
                var lease = leaves.Rent(name);
                onLease(lease);
                return ValueTask.FromResult(new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = lease.Context,
                    EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                });
            },
            null,
            cancellationToken).ConfigureAwait(false);
        connection.Transport = new DuplexPipe(PipeReader.Create(tls), PipeWriter.Create(tls));
    }
}
