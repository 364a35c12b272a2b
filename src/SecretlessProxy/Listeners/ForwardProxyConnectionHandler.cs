using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
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
    private readonly TlsInterceptor _interceptor;
    private readonly BlindRelay _relay;
    private readonly ILogger _logger;

    public ForwardProxyConnectionHandler(ProxyState state, TlsInterceptor interceptor, BlindRelay relay, ILogger<ForwardProxyConnectionHandler> logger)
    {
        _state = state;
        _interceptor = interceptor;
        _relay = relay;
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
        await WriteAsync(connection, "HTTP/1.1 200 Connection Established\r\n\r\n").ConfigureAwait(false);
        await _interceptor.InterceptAsync(connection, next, listenerName, new TunnelFeature(connect.Host, connect.Port)).ConfigureAwait(false);
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
        await _relay.RelayAsync(connection, upstream, listenerName, connect.Host, connect.Port, next => StillBlind(next, listenerName, connect)).ConfigureAwait(false);
    }

    private static bool StillBlind(Configuration.ProxySnapshot snapshot, string listenerName, ConnectRequest connect) =>
        snapshot.Listeners.TryGetValue(listenerName, out var listener) &&
        listener.AllowedConnectPorts.Contains(connect.Port) &&
        listener.Unmatched == UnmatchedBehavior.PassThrough &&
        !snapshot.Policies.CanMatchHost(connect.Host, connect.Port);

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

        [LoggerMessage(EventIds.TunnelBlind, LogLevel.Information, "Relaying CONNECT {Host}:{Port} on listener {Listener} blind: no policy matches the host")]
        public static partial void RelayingBlind(ILogger logger, string listener, string host, int port);
    }
}
