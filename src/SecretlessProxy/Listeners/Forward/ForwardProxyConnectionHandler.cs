using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Attestation;
using SecretlessProxy.Core;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners.Forward;

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
    /// <summary>The scheme a tunnel's audit record carries: bytes of any protocol, not yet known to be HTTPS.</summary>
    private const string TunnelScheme = "tcp";

    private readonly ProxyState _state;
    private readonly TlsInterceptor _interceptor;
    private readonly BlindRelay _relay;
    private readonly AccessPipeline _pipeline;
    private readonly ConnectionRefusals _refusals;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public ForwardProxyConnectionHandler(ProxyState state, AccessPipeline pipeline, TlsInterceptor interceptor, BlindRelay relay, ConnectionRefusals refusals, TimeProvider time, ILogger<ForwardProxyConnectionHandler> logger)
    {
        _state = state;
        _pipeline = pipeline;
        _interceptor = interceptor;
        _relay = relay;
        _refusals = refusals;
        _time = time;
        _logger = logger;
    }

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next, string listenerName)
    {
        var input = connection.Transport.Input;
        var limits = _state.Snapshot.Listeners.GetValueOrDefault(listenerName)?.Limits ?? ListenerLimits.Default;
        // One budget for the CONNECT head, the upstream connect of a blind relay and the TLS
        // handshake of an interception: a client that stalls in any of them is closed.
        using var deadline = new HandshakeDeadline(limits.HandshakeTimeout, _time, connection.ConnectionClosed);
        ReadResult read;
        SequencePosition headEnd;
        var received = 0L;
        while (true)
        {
            try
            {
                read = await input.ReadAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
            {
                _refusals.HandshakeTimedOut(listenerName, received == 0 ? "the first request" : "the CONNECT request head", deadline.Timeout);
                if (received > 0)
                {
                    // RFC 9110 section 15.5.9: the head did not arrive in time; a silent client is
                    // closed without an answer, as Kestrel does for an idle connection.
                    await RespondAsync(connection, 408, "Request Timeout", "the CONNECT request head did not arrive within " + deadline.Timeout.TotalSeconds + " s").ConfigureAwait(false);
                }

                return;
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
                // Not a tunnel: Kestrel parses these same bytes as an ordinary request, within its
                // request-head timeout.
                input.AdvanceTo(buffer.Start);
                deadline.Stop();
                await next(connection).ConfigureAwait(false);
                return;
            }

            received = buffer.Length;

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

        var parsed = ConnectRequest.Parse(read.Buffer.Slice(0, headEnd), out var invalidHost);
        input.AdvanceTo(headEnd);
        if (invalidHost)
        {
            // Refused before policy, DNS or the local CA see it: a leaf's subject or SAN cannot hold
            // "localhost;.example.test" or "CN=x,O=y", and the name is not echoed back.
            Log.InvalidHost(_logger, listenerName);
            await RespondAsync(connection, 400, "Bad Request", "the CONNECT host is neither a DNS name (letters, digits and hyphens in dot-separated labels of at most 63 characters, 253 in all) nor an IP literal (IPv6 in brackets)", "invalid-host").ConfigureAwait(false);
            return;
        }

        if (parsed is not { } connect)
        {
            await RespondAsync(connection, 400, "Bad Request", "CONNECT needs an authority-form target: host:port").ConfigureAwait(false);
            return;
        }

        var generation = _state.Current;
        var snapshot = generation.Snapshot;
        if (!snapshot.Listeners.TryGetValue(listenerName, out var listener))
        {
            await RespondAsync(connection, 503, "Service Unavailable", "listener '" + listenerName + "' is not configured").ConfigureAwait(false);
            return;
        }

        if (!ForwardListenerSettings.Of(listener).AllowedConnectPorts.Contains(connect.Port))
        {
            var detail = "CONNECT to port " + connect.Port + " is not allowed on listener '" + listenerName + "'";
            Log.ConnectRefused(_logger, listenerName, connect.Host, connect.Port, "port not allowed");
            RecordTunnel(connection, generation, listener, connect, passedThrough: false, AccessOutcome.Denied, detail);
            await RespondAsync(connection, 403, "Forbidden", detail).ConfigureAwait(false);
            return;
        }

        if (snapshot.Policies.CanMatchHost(connect.Host, connect.Port))
        {
            await InterceptAsync(connection, next, listenerName, connect, deadline).ConfigureAwait(false);
        }
        else if (listener.Unmatched.LetsThrough())
        {
            await RelayBlindAsync(connection, listenerName, connect, deadline, (outcome, reason) => RecordTunnel(connection, generation, listener, connect, outcome == AccessOutcome.PassedThrough, outcome, reason)).ConfigureAwait(false);
        }
        else
        {
            var detail = "no policy matches " + connect.Host + ":" + connect.Port;
            Log.ConnectRefused(_logger, listenerName, connect.Host, connect.Port, "no policy matches the host");
            RecordTunnel(connection, generation, listener, connect, passedThrough: false, AccessOutcome.Denied, detail);
            await RespondAsync(connection, 403, "Forbidden", detail).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A tunnel decided by its host alone (refused, or relayed blind) is an access like any request:
    /// audited, counted and traced through the pipeline. An intercepted tunnel is not: each request
    /// inside it is decided and recorded on its own.
    /// </summary>
    private void RecordTunnel(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, ConnectRequest connect, bool passedThrough, AccessOutcome outcome, string reason)
    {
        using var activity = ProxyTelemetry.StartRequest(listener.Name, connection.LocalEndPoint);
        var destination = new RequestDestination(TunnelScheme, connect.Host, connect.Port, "CONNECT", string.Empty);
        _pipeline.RecordConnection(new AccessRequest(generation, listener, destination, activity) { Caller = connection.Features.Get<CallerFeature>() }, passedThrough, outcome, reason);
    }

    private async Task InterceptAsync(ConnectionContext connection, ConnectionDelegate next, string listenerName, ConnectRequest connect, HandshakeDeadline deadline)
    {
        await WriteAsync(connection, "HTTP/1.1 200 Connection Established\r\n\r\n").ConfigureAwait(false);
        await _interceptor.InterceptAsync(connection, next, listenerName, new TunnelFeature(connect.Host, connect.Port), deadline).ConfigureAwait(false);
    }

    /// <param name="record">Records the tunnel's access once its fate is known: relayed, or refused because the upstream could not be reached.</param>
    private async Task RelayBlindAsync(ConnectionContext connection, string listenerName, ConnectRequest connect, HandshakeDeadline deadline, Action<AccessOutcome, string> record)
    {
        using var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await upstream.ConnectAsync(connect.Host, connect.Port, deadline.Token).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            Log.ConnectRefused(_logger, listenerName, connect.Host, connect.Port, "upstream unreachable (" + ex.SocketErrorCode + ")");
            record(AccessOutcome.UpstreamUnreachable, "cannot reach " + connect.Host + ":" + connect.Port + " (" + ex.SocketErrorCode + ")");
            await RespondAsync(connection, 502, "Bad Gateway", "cannot reach " + connect.Host + ":" + connect.Port).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
        {
            Log.ConnectRefused(_logger, listenerName, connect.Host, connect.Port, "upstream did not accept within the handshake timeout");
            record(AccessOutcome.HandshakeTimeout, "cannot reach " + connect.Host + ":" + connect.Port + " within " + deadline.Timeout.TotalSeconds + " s");
            await RespondAsync(connection, 504, "Gateway Timeout", "cannot reach " + connect.Host + ":" + connect.Port + " within " + deadline.Timeout.TotalSeconds + " s").ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException)
        {
            return;
        }

        // A blind tunnel carries whatever the two ends speak, for as long as they speak it.
        deadline.Stop();

        Log.RelayingBlind(_logger, listenerName, connect.Host, connect.Port);
        record(AccessOutcome.PassedThrough, "no policy matches " + connect.Host + ":" + connect.Port + "; relayed blind (Unmatched PassThrough)");
        await WriteAsync(connection, "HTTP/1.1 200 Connection Established\r\n\r\n").ConfigureAwait(false);
        await _relay.RelayAsync(connection, upstream, listenerName, connect.Host, connect.Port, next => StillBlind(next, listenerName, connect)).ConfigureAwait(false);
    }

    private static bool StillBlind(ProxySnapshot snapshot, string listenerName, ConnectRequest connect) =>
        snapshot.Listeners.TryGetValue(listenerName, out var listener) &&
        ForwardListenerSettings.Of(listener).AllowedConnectPorts.Contains(connect.Port) &&
        listener.Unmatched.LetsThrough() &&
        !snapshot.Policies.CanMatchHost(connect.Host, connect.Port);

    private static async Task RespondAsync(ConnectionContext connection, int status, string reason, string detail, string type = "connect-refused")
    {
        var body = "{\"type\":\"urn:secretless-proxy:problem:" + type + "\",\"title\":\"" + reason + "\",\"status\":" + status + ",\"detail\":" + System.Text.Json.JsonSerializer.Serialize(detail, ProblemJsonContext.Default.String) + "}";
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

        // Debug: any local process can send these for free, so they must not flood the log. The
        // name itself is not logged: it is whatever bytes the client chose.
        [LoggerMessage(EventIds.ConnectInvalidHost, LogLevel.Debug, "Refused a CONNECT on listener {Listener}: its host is neither a DNS name nor an IP literal")]
        public static partial void InvalidHost(ILogger logger, string listener);

        [LoggerMessage(EventIds.TunnelBlind, LogLevel.Information, "Relaying CONNECT {Host}:{Port} on listener {Listener} blind: no policy matches the host")]
        public static partial void RelayingBlind(ILogger logger, string listener, string host, int port);
    }
}
