using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners;

/// <summary>
/// Terminates a client's TLS with a leaf for the tunnel's host from the local CA and hands the
/// decrypted connection to Kestrel's HTTP pipeline, where policy runs for every request. Shared by
/// the Forward listener (after a CONNECT) and the Transparent listener (after peeking a ClientHello).
/// </summary>
internal sealed partial class TlsInterceptor
{
    private readonly ProxyState _state;
    private readonly ConnectionRefusals _refusals;
    private readonly ILogger _logger;

    public TlsInterceptor(ProxyState state, ConnectionRefusals refusals, ILogger<TlsInterceptor> logger)
    {
        _state = state;
        _refusals = refusals;
        _logger = logger;
    }

    /// <param name="deadline">
    /// The connection's handshake deadline: the TLS handshake and the first decrypted bytes must
    /// arrive within it (a client that sends a ClientHello, or CONNECT and nothing, is closed).
    /// </param>
    public async Task InterceptAsync(ConnectionContext connection, ConnectionDelegate next, string listenerName, TunnelFeature tunnel, HandshakeDeadline deadline)
    {
        var leaves = _state.Leaves ?? throw new InvalidOperationException("A listener that intercepts TLS runs without a local CA.");
        var original = connection.Transport;
        var tls = new SslStream(new DuplexPipeStream(original), leaveInnerStreamOpen: false);
        // Held until the SslStream is disposed: the leaf cache may evict this host's certificate at
        // any moment, and disposes it only once no tunnel still uses it.
        LeafCertificateLease? lease = null;
        try
        {
            // The options are chosen from the ClientHello, so an SNI that names another host fails
            // the handshake itself (clients send no SNI for IP literals, which is allowed).
            await tls.AuthenticateAsServerAsync(
                (_, hello, _, _) =>
                {
                    if (!string.IsNullOrEmpty(hello.ServerName))
                    {
                        if (!HostName.TryNormalizeServerName(hello.ServerName, out var sni))
                        {
                            Log.InvalidSni(_logger, listenerName, tunnel.Host);
                            throw new AuthenticationException("the TLS SNI is not a DNS name");
                        }

                        if (sni != tunnel.Host)
                        {
                            Log.SniMismatch(_logger, listenerName, tunnel.Host, sni);
                            throw new AuthenticationException("the TLS SNI does not name the tunnel's host");
                        }
                    }

                    lease ??= leaves.Rent(tunnel.Host);
                    return ValueTask.FromResult(new SslServerAuthenticationOptions
                    {
                        ServerCertificateContext = lease.Context,
                        ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
                        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                        ClientCertificateRequired = false,
                    });
                },
                null,
                deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
        {
            _refusals.HandshakeTimedOut(listenerName, "the TLS handshake for " + tunnel.Host, deadline.Timeout);
            await tls.DisposeAsync().ConfigureAwait(false);
            lease?.Dispose();
            return;
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException or ArgumentException or CryptographicException)
        {
            // Typically a client that does not trust the local CA: it aborts the handshake, and
            // nothing is sent anywhere. A host the CA cannot name (refused upstream of here, by
            // HostName) would end the same way rather than take the listener down.
            Log.HandshakeFailed(_logger, listenerName, tunnel.Host, ex.GetType().Name);
            await tls.DisposeAsync().ConfigureAwait(false);
            lease?.Dispose();
            return;
        }

        Log.Intercepting(_logger, listenerName, tunnel.Host, tunnel.Port);
        connection.Features.Set(tunnel);
        var tlsFeature = new TunnelTlsFeature(tls.NegotiatedApplicationProtocol.Protocol);
        connection.Features.Set<Microsoft.AspNetCore.Http.Features.ITlsConnectionFeature>(tlsFeature);
        connection.Features.Set<Microsoft.AspNetCore.Server.Kestrel.Core.Features.ITlsApplicationProtocolFeature>(tlsFeature);
        connection.Transport = new DuplexPipe(PipeReader.Create(tls), PipeWriter.Create(tls));
        try
        {
            // Kestrel would hold a silent connection for its keep-alive timeout: the first request
            // is still part of the handshake budget.
            if (!await deadline.WaitForFirstBytesAsync(connection.Transport.Input).ConfigureAwait(false))
            {
                if (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
                {
                    _refusals.HandshakeTimedOut(listenerName, "the first request in the tunnel to " + tunnel.Host, deadline.Timeout);
                }

                return;
            }

            deadline.Stop();
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            connection.Transport = original;
            await tls.DisposeAsync().ConfigureAwait(false);
            lease?.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.TunnelIntercepted, LogLevel.Debug, "Intercepting TLS to {Host}:{Port} on listener {Listener}")]
        public static partial void Intercepting(ILogger logger, string listener, string host, int port);

        [LoggerMessage(EventIds.TunnelHandshakeFailed, LogLevel.Information, "TLS handshake for {Host} on listener {Listener} failed ({Error}); does the client trust the local CA?")]
        public static partial void HandshakeFailed(ILogger logger, string listener, string host, string error);

        [LoggerMessage(EventIds.TunnelInvalidServerName, LogLevel.Warning, "Closed the tunnel to {Host} on listener {Listener}: the TLS SNI is not a DNS name")]
        public static partial void InvalidSni(ILogger logger, string listener, string host);

        [LoggerMessage(EventIds.TunnelSniMismatch, LogLevel.Warning, "Closed the tunnel to {Host} on listener {Listener}: the TLS SNI named {Sni}")]
        public static partial void SniMismatch(ILogger logger, string listener, string host, string sni);
    }
}
