using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using SecretlessProxy.Hosting;
using SecretlessProxy.Policy;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners;

/// <summary>
/// Connection middleware of a Forward listener, below HTTP. A CONNECT is decided here: refused
/// (port not allowed, or no policy and Unmatched Deny), relayed blind (no policy can match the host
/// and Unmatched is PassThrough: bytes copied, never decrypted), or intercepted: TLS is terminated
/// with a leaf for the CONNECT host from the local CA and the decrypted connection is handed to
/// Kestrel's HTTP pipeline, where policy runs for every request in the tunnel. Anything that is not
/// a CONNECT goes to Kestrel untouched (absolute-form http:// requests).
/// </summary>
internal sealed partial class ForwardProxyConnectionHandler
{
    private readonly ProxyState _state;
    private readonly ILogger _logger;

    public ForwardProxyConnectionHandler(ProxyState state, ILogger<ForwardProxyConnectionHandler> logger)
    {
        _state = state;
        _logger = logger;
    }

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next, string listenerName)
    {
        var input = connection.Transport.Input;
        var cancel = connection.ConnectionClosed;
        ReadResult read;
        SequencePosition headEnd;
        while (true)
        {
            try
            {
                read = await input.ReadAsync(cancel).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var buffer = read.Buffer;
            if (buffer.IsEmpty && read.IsCompleted)
            {
                // Connected and closed without a byte.
                input.AdvanceTo(buffer.End);
                return;
            }

            if (!ConnectRequest.MayBeConnect(buffer))
            {
                // Not a tunnel: Kestrel parses these same bytes as an ordinary request.
                input.AdvanceTo(buffer.Start);
                await next(connection).ConfigureAwait(false);
                return;
            }

            if (ConnectRequest.TryFindHeadEnd(buffer, out headEnd))
            {
                break;
            }

            if (buffer.Length > ConnectRequest.MaxHeadBytes || read.IsCompleted)
            {
                input.AdvanceTo(buffer.End);
                await RespondAsync(connection, 431, "Request Header Fields Too Large", "the CONNECT request head is too large or incomplete").ConfigureAwait(false);
                return;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }

        var parsed = ConnectRequest.Parse(read.Buffer.Slice(0, headEnd));
        input.AdvanceTo(headEnd);
        if (parsed is not { } connect)
        {
            await RespondAsync(connection, 400, "Bad Request", "CONNECT needs an authority-form target: host:port").ConfigureAwait(false);
            return;
        }

        var snapshot = _state.Snapshot;
        if (!snapshot.Listeners.TryGetValue(listenerName, out var listener))
        {
            await RespondAsync(connection, 503, "Service Unavailable", "listener '" + listenerName + "' is not configured").ConfigureAwait(false);
            return;
        }

        if (!listener.AllowedConnectPorts.Contains(connect.Port))
        {
            Log.ConnectRefused(_logger, listenerName, connect.Host, connect.Port, "port not allowed");
            await RespondAsync(connection, 403, "Forbidden", "CONNECT to port " + connect.Port + " is not allowed on listener '" + listenerName + "'").ConfigureAwait(false);
            return;
        }

        if (snapshot.Policies.CanMatchHost(connect.Host, connect.Port))
        {
            await InterceptAsync(connection, next, listenerName, connect).ConfigureAwait(false);
        }
        else if (listener.Unmatched == UnmatchedBehavior.PassThrough)
        {
            await RelayBlindAsync(connection, listenerName, connect).ConfigureAwait(false);
        }
        else
        {
            Log.ConnectRefused(_logger, listenerName, connect.Host, connect.Port, "no policy matches the host");
            await RespondAsync(connection, 403, "Forbidden", "no policy matches " + connect.Host + ":" + connect.Port).ConfigureAwait(false);
        }
    }

    private async Task InterceptAsync(ConnectionContext connection, ConnectionDelegate next, string listenerName, ConnectRequest connect)
    {
        var leaves = _state.Leaves ?? throw new InvalidOperationException("A Forward listener runs without a local CA.");
        await WriteAsync(connection, "HTTP/1.1 200 Connection Established\r\n\r\n").ConfigureAwait(false);

        var original = connection.Transport;
        var tls = new SslStream(new DuplexPipeStream(original), leaveInnerStreamOpen: false);
        try
        {
            // The options are chosen from the ClientHello, so an SNI that names another host fails
            // the handshake itself (clients send no SNI for IP literals, which is allowed).
            await tls.AuthenticateAsServerAsync(
                (_, hello, _, _) =>
                {
                    if (!string.IsNullOrEmpty(hello.ServerName) && !string.Equals(hello.ServerName, connect.Host, StringComparison.OrdinalIgnoreCase))
                    {
                        Log.SniMismatch(_logger, listenerName, connect.Host, hello.ServerName);
                        throw new AuthenticationException("the TLS SNI does not name the CONNECT host");
                    }

                    return ValueTask.FromResult(new SslServerAuthenticationOptions
                    {
                        ServerCertificateContext = leaves.GetOrIssue(connect.Host),
                        ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
                        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                        ClientCertificateRequired = false,
                    });
                },
                null,
                connection.ConnectionClosed).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException)
        {
            // Typically a client that does not trust the local CA: it aborts the handshake, and
            // nothing is sent anywhere.
            Log.HandshakeFailed(_logger, listenerName, connect.Host, ex.GetType().Name);
            await tls.DisposeAsync().ConfigureAwait(false);
            return;
        }

        Log.Intercepting(_logger, listenerName, connect.Host, connect.Port);
        connection.Features.Set(new TunnelFeature(connect.Host, connect.Port));
        var tlsFeature = new TunnelTlsFeature(tls.NegotiatedApplicationProtocol.Protocol);
        connection.Features.Set<Microsoft.AspNetCore.Http.Features.ITlsConnectionFeature>(tlsFeature);
        connection.Features.Set<Microsoft.AspNetCore.Server.Kestrel.Core.Features.ITlsApplicationProtocolFeature>(tlsFeature);
        connection.Transport = new DuplexPipe(PipeReader.Create(tls), PipeWriter.Create(tls));
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            connection.Transport = original;
            await tls.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task RelayBlindAsync(ConnectionContext connection, string listenerName, ConnectRequest connect)
    {
        using var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await upstream.ConnectAsync(connect.Host, connect.Port, connection.ConnectionClosed).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            Log.ConnectRefused(_logger, listenerName, connect.Host, connect.Port, "upstream unreachable (" + ex.SocketErrorCode + ")");
            await RespondAsync(connection, 502, "Bad Gateway", "cannot reach " + connect.Host + ":" + connect.Port).ConfigureAwait(false);
            return;
        }

        Log.RelayingBlind(_logger, listenerName, connect.Host, connect.Port);
        await WriteAsync(connection, "HTTP/1.1 200 Connection Established\r\n\r\n").ConfigureAwait(false);
        await using var stream = new NetworkStream(upstream, ownsSocket: false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);

        // A blind tunnel outlives requests, so a reload re-checks it: when a policy now covers the
        // host (its requests must be decided and injected) or the listener now denies unmatched
        // hosts, the tunnel is closed and the client's next CONNECT is decided by the new version.
        void OnReload(Configuration.ProxySnapshot next)
        {
            if (!StillBlind(next, listenerName, connect))
            {
                Log.BlindTunnelClosed(_logger, listenerName, connect.Host, connect.Port);
                try
                {
                    stop.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // The tunnel ended on its own while the reload was being announced.
                }
            }
        }

        _state.SnapshotChanged += OnReload;
        try
        {
            await RelayAsync(connection, upstream, stream, stop).ConfigureAwait(false);
        }
        finally
        {
            _state.SnapshotChanged -= OnReload;
        }
    }

    private static bool StillBlind(Configuration.ProxySnapshot snapshot, string listenerName, ConnectRequest connect) =>
        snapshot.Listeners.TryGetValue(listenerName, out var listener) &&
        listener.AllowedConnectPorts.Contains(connect.Port) &&
        listener.Unmatched == UnmatchedBehavior.PassThrough &&
        !snapshot.Policies.CanMatchHost(connect.Host, connect.Port);

    private static async Task RelayAsync(ConnectionContext connection, Socket upstream, NetworkStream stream, CancellationTokenSource stop)
    {
        var toUpstream = CopyToUpstreamAsync(connection.Transport.Input, stream, upstream, stop.Token);
        var toClient = stream.CopyToAsync(connection.Transport.Output, stop.Token);
        await Task.WhenAny(toUpstream, toClient).ConfigureAwait(false);
        if (toClient.IsCompleted)
        {
            // The upstream closed: nothing more can come back, so end the tunnel.
            await stop.CancelAsync().ConfigureAwait(false);
        }

        try
        {
            await Task.WhenAll(toUpstream, toClient).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException)
        {
        }
    }

    private static async Task CopyToUpstreamAsync(PipeReader input, NetworkStream stream, Socket upstream, CancellationToken cancellationToken)
    {
        await input.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
        // The client finished sending: pass the half-close on so the upstream sees the end of the request.
        upstream.Shutdown(SocketShutdown.Send);
    }

    private static async Task RespondAsync(ConnectionContext connection, int status, string reason, string detail)
    {
        var body = "{\"type\":\"urn:secretless-proxy:problem:connect-refused\",\"title\":\"" + reason + "\",\"status\":" + status + ",\"detail\":" + System.Text.Json.JsonSerializer.Serialize(detail, ProblemJsonContext.Default.String) + "}";
        await WriteAsync(connection, "HTTP/1.1 " + status + " " + reason + "\r\nContent-Type: application/problem+json\r\nContent-Length: " + Encoding.UTF8.GetByteCount(body) + "\r\nConnection: close\r\n\r\n" + body).ConfigureAwait(false);
        await connection.Transport.Output.CompleteAsync().ConfigureAwait(false);
    }

    private static async Task WriteAsync(ConnectionContext connection, string text)
    {
        await connection.Transport.Output.WriteAsync(Encoding.UTF8.GetBytes(text), connection.ConnectionClosed).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.ConnectRefused, LogLevel.Information, "Refused CONNECT {Host}:{Port} on listener {Listener}: {Reason}")]
        public static partial void ConnectRefused(ILogger logger, string listener, string host, int port, string reason);

        [LoggerMessage(EventIds.TunnelIntercepted, LogLevel.Debug, "Intercepting CONNECT {Host}:{Port} on listener {Listener}")]
        public static partial void Intercepting(ILogger logger, string listener, string host, int port);

        [LoggerMessage(EventIds.BlindTunnelClosedByReload, LogLevel.Information, "Closed the blind tunnel to {Host}:{Port} on listener {Listener}: the reloaded configuration intercepts or refuses it")]
        public static partial void BlindTunnelClosed(ILogger logger, string listener, string host, int port);

        [LoggerMessage(EventIds.TunnelBlind, LogLevel.Information, "Relaying CONNECT {Host}:{Port} on listener {Listener} blind: no policy matches the host")]
        public static partial void RelayingBlind(ILogger logger, string listener, string host, int port);

        [LoggerMessage(EventIds.TunnelHandshakeFailed, LogLevel.Information, "TLS handshake for CONNECT {Host} on listener {Listener} failed ({Error}); does the client trust the local CA?")]
        public static partial void HandshakeFailed(ILogger logger, string listener, string host, string error);

        [LoggerMessage(EventIds.TunnelSniMismatch, LogLevel.Warning, "Closed CONNECT tunnel to {Host} on listener {Listener}: the TLS SNI named {Sni}")]
        public static partial void SniMismatch(ILogger logger, string listener, string host, string sni);
    }
}
