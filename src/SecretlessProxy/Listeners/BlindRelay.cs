using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners;

/// <summary>
/// Copies bytes both ways between a client connection and an upstream socket, never decrypting or
/// parsing them. Shared by the Forward listener (a CONNECT no policy can match) and the Transparent
/// listener (a connection no policy can match, or one that speaks neither TLS nor HTTP).
/// </summary>
internal sealed partial class BlindRelay
{
    private readonly ProxyState _state;
    private readonly ILogger _logger;

    public BlindRelay(ProxyState state, ILogger<BlindRelay> logger)
    {
        _state = state;
        _logger = logger;
    }

    /// <param name="stillBlind">
    /// Asked on every reload: a blind relay outlives requests, so when a new version would intercept
    /// or refuse it (its requests must be decided and injected, or the listener now denies), the
    /// relay is closed and the client's next connection is decided by the new version.
    /// </param>
    public async Task RelayAsync(ConnectionContext connection, Socket upstream, string listenerName, string host, int port, Func<ProxySnapshot, bool> stillBlind)
    {
        await using var stream = new NetworkStream(upstream, ownsSocket: false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);

        void OnReload(ProxySnapshot next)
        {
            if (!stillBlind(next))
            {
                Log.BlindTunnelClosed(_logger, listenerName, host, port);
                try
                {
                    stop.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // The relay ended on its own while the reload was being announced.
                }
            }
        }

        _state.SnapshotChanged += OnReload;
        try
        {
            var toUpstream = CopyToUpstreamAsync(connection.Transport.Input, stream, upstream, stop.Token);
            var toClient = stream.CopyToAsync(connection.Transport.Output, stop.Token);
            await Task.WhenAny(toUpstream, toClient).ConfigureAwait(false);
            if (toClient.IsCompleted)
            {
                // The upstream closed: nothing more can come back, so end the relay.
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
        finally
        {
            _state.SnapshotChanged -= OnReload;
        }
    }

    private static async Task CopyToUpstreamAsync(PipeReader input, NetworkStream stream, Socket upstream, CancellationToken cancellationToken)
    {
        await input.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
        // The client finished sending: pass the half-close on so the upstream sees the end of the request.
        upstream.Shutdown(SocketShutdown.Send);
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.BlindTunnelClosedByReload, LogLevel.Information, "Closed the blind tunnel to {Host}:{Port} on listener {Listener}: the reloaded configuration intercepts or refuses it")]
        public static partial void BlindTunnelClosed(ILogger logger, string listener, string host, int port);
    }
}
