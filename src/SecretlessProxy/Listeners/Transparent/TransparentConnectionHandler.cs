using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Yarp.ReverseProxy.Utilities.Tls;
using SecretlessProxy.Attestation;
using SecretlessProxy.Core;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners.Transparent;

/// <summary>
/// Connection middleware of a Transparent listener, below HTTP. iptables REDIRECTs the app's
/// outbound connections here; the kernel still knows where each was going (SO_ORIGINAL_DST). The
/// first bytes decide the rest, before anything leaves: a TLS ClientHello whose SNI some policy can
/// match is intercepted with the local CA, exactly as a CONNECT in forward mode; plain HTTP goes to
/// Kestrel, where each request's Host names the policy host; anything else, and TLS no policy can
/// match, is relayed blind to the original destination under Unmatched PassThrough and closed under
/// Deny. Upstream connections always go to the original destination's address, never to a DNS
/// lookup of a name the app chose.
/// </summary>
internal sealed partial class TransparentConnectionHandler
{
    /// <summary>
    /// How long the app may stay silent before the connection counts as "not TLS or HTTP": in
    /// protocols where the server speaks first (SMTP, MySQL) the app waits for the upstream.
    /// </summary>
    /// <summary>The scheme a connection's audit record carries: bytes of any protocol.</summary>
    private const string ConnectionScheme = "tcp";

    internal static readonly TimeSpan FirstBytesTimeout = TimeSpan.FromSeconds(1);

    private readonly ProxyState _state;
    private readonly TlsInterceptor _interceptor;
    private readonly BlindRelay _relay;
    private readonly AccessPipeline _pipeline;
    private readonly ConnectionRefusals _refusals;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly int _ownUid;

    public TransparentConnectionHandler(ProxyState state, AccessPipeline pipeline, TlsInterceptor interceptor, BlindRelay relay, ConnectionRefusals refusals, TimeProvider time, ILogger<TransparentConnectionHandler> logger)
    {
        _state = state;
        _pipeline = pipeline;
        _interceptor = interceptor;
        _relay = relay;
        _refusals = refusals;
        _time = time;
        _logger = logger;
        _ownUid = ReadEffectiveUid();
    }

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next, string listenerName)
    {
        var generation = _state.Current;
        var snapshot = generation.Snapshot;
        if (!snapshot.Listeners.TryGetValue(listenerName, out var listener))
        {
            Log.Refused(_logger, listenerName, "-", 0, "the listener is not configured");
            return;
        }

        var socket = connection.Features.Get<IConnectionSocketFeature>()?.Socket;
        if (socket is null || OriginalDestination.Read(socket) is not { } original)
        {
            Log.Refused(_logger, listenerName, "-", 0, "the kernel has no original destination for it (not redirected by iptables' nat table)");
            return;
        }

        original = Normalize(original);
        if (LoopReason(connection, snapshot, original) is { } loop)
        {
            Log.LoopRefused(_logger, listenerName, original.Address.ToString(), original.Port, loop);
            return;
        }

        // One budget for the first bytes, the upstream connect of a blind relay and the TLS handshake
        // of an interception.
        using var deadline = new HandshakeDeadline(listener.Limits.HandshakeTimeout, _time, connection.ConnectionClosed);
        var peek = await PeekAsync(connection, deadline).ConfigureAwait(false);
        if (peek is not { } first)
        {
            if (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
            {
                _refusals.HandshakeTimedOut(listenerName, "the first bytes", deadline.Timeout);
            }

            return;
        }

        switch (first.Protocol)
        {
            case PeekedProtocol.Http:
                // Kestrel parses the same bytes; ProxyRequestHandler decides each request by its Host.
                Log.Http(_logger, listenerName, original.Address.ToString(), original.Port);
                connection.Features.Set(new OriginalDestinationFeature(original));
                deadline.Stop();
                await next(connection).ConfigureAwait(false);
                return;

            case PeekedProtocol.Tls:
                // Without SNI (an IP literal) the address is the host policies match.
                var host = first.ServerName is null ? original.Address.ToString() : HostName.TryNormalizeServerName(first.ServerName, out var sni) ? sni : null;
                if (host is null)
                {
                    // An SNI that is no DNS name never reaches policy or the local CA: nothing can be
                    // intercepted for it. It is relayed blind, as a host no policy names, or refused.
                    var address = original.Address.ToString();
                    Log.InvalidServerName(_logger, listenerName, address, original.Port);
                    if (listener.Unmatched.LetsThrough())
                    {
                        await RelayBlindAsync(connection, generation, listener, address, original, deadline, next => next.Listeners.TryGetValue(listenerName, out var l) && l.Unmatched.LetsThrough()).ConfigureAwait(false);
                        return;
                    }

                    RecordConnection(connection, generation, listener, address, original.Port, passedThrough: false, AccessOutcome.Denied, "the TLS server name is not a DNS name, and Unmatched is Deny");
                    await connection.Transport.Output.WriteAsync(TlsFrameHelper.CreateAlertFrame(System.Security.Authentication.SslProtocols.Tls12, TlsAlertDescription.IllegalParameter), connection.ConnectionClosed).ConfigureAwait(false);
                    await connection.Transport.Output.CompleteAsync().ConfigureAwait(false);
                    return;
                }

                if (snapshot.Policies.CanMatchHost(host, original.Port))
                {
                    await _interceptor.InterceptAsync(connection, next, listenerName, new TunnelFeature(host, original.Port, original.Address), deadline).ConfigureAwait(false);
                    return;
                }

                if (listener.Unmatched.LetsThrough())
                {
                    await RelayBlindAsync(connection, generation, listener, host, original, deadline, next => StillBlind(next, listenerName, host, original.Port)).ConfigureAwait(false);
                    return;
                }

                Log.Refused(_logger, listenerName, host, original.Port, "no policy matches the host");
                RecordConnection(connection, generation, listener, host, original.Port, passedThrough: false, AccessOutcome.Denied, "no policy matches " + host + ":" + original.Port);
                // An alert is legal before the handshake, and tells the client why rather than just closing.
                await connection.Transport.Output.WriteAsync(TlsFrameHelper.CreateAlertFrame(System.Security.Authentication.SslProtocols.Tls12, TlsAlertDescription.AccessDenied), connection.ConnectionClosed).ConfigureAwait(false);
                await connection.Transport.Output.CompleteAsync().ConfigureAwait(false);
                return;

            default:
                var other = original.Address.ToString();
                if (listener.Unmatched.LetsThrough())
                {
                    await RelayBlindAsync(connection, generation, listener, other, original, deadline, next => next.Listeners.TryGetValue(listenerName, out var l) && l.Unmatched.LetsThrough()).ConfigureAwait(false);
                    return;
                }

                Log.Refused(_logger, listenerName, other, original.Port, "neither TLS nor HTTP, and Unmatched is Deny");
                RecordConnection(connection, generation, listener, other, original.Port, passedThrough: false, AccessOutcome.Denied, "neither TLS nor HTTP, and Unmatched is Deny");
                return;
        }
    }

    /// <summary>The first bytes, left unread in the pipe for whoever handles the connection; null when the client went away.</summary>
    private static async Task<PeekResult?> PeekAsync(ConnectionContext connection, HandshakeDeadline deadline)
    {
        var input = connection.Transport.Input;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
        timeout.CancelAfter(FirstBytesTimeout);
        while (true)
        {
            ReadResult read;
            try
            {
                read = await input.ReadAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!connection.ConnectionClosed.IsCancellationRequested && !deadline.Expired)
            {
                return new PeekResult(PeekedProtocol.Other);
            }
            catch (OperationCanceledException)
            {
                return null;
            }

            var result = ProtocolPeek.Classify(read.Buffer, read.IsCompleted);
            if (result.Protocol != PeekedProtocol.NeedMore)
            {
                input.AdvanceTo(read.Buffer.Start);
                return read.Buffer.IsEmpty && read.IsCompleted ? null : result;
            }

            input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    /// <summary>
    /// A connection decided by its destination alone (refused, or relayed blind) is an access like any
    /// request: audited, counted and traced through the pipeline. An intercepted or plain HTTP
    /// connection is not: each request in it is decided and recorded on its own.
    /// </summary>
    private void RecordConnection(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, string host, int port, bool passedThrough, AccessOutcome outcome, string reason)
    {
        using var activity = ProxyTelemetry.StartRequest(listener.Name, connection.LocalEndPoint);
        var destination = new RequestDestination(ConnectionScheme, host, port, "CONNECT", string.Empty);
        _pipeline.RecordConnection(new AccessRequest(generation, listener, destination, activity) { Caller = connection.Features.Get<CallerFeature>() }, passedThrough, outcome, reason);
    }

    private async Task RelayBlindAsync(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, string host, IPEndPoint original, HandshakeDeadline deadline, Func<ProxySnapshot, bool> stillBlind)
    {
        var listenerName = listener.Name;
        using var upstream = new Socket(original.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await upstream.ConnectAsync(original, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            var why = ex is SocketException s ? s.SocketErrorCode.ToString() : deadline.Expired ? "no answer within the handshake timeout" : "client left";
            Log.Refused(_logger, listenerName, host, original.Port, "upstream unreachable (" + why + ")");
            var outcome = ex is SocketException ? AccessOutcome.UpstreamUnreachable : deadline.Expired ? AccessOutcome.HandshakeTimeout : AccessOutcome.ClientAborted;
            RecordConnection(connection, generation, listener, host, original.Port, passedThrough: false, outcome, "cannot reach " + host + ":" + original.Port + " (" + why + ")");
            return;
        }

        // A blind relay carries whatever the two ends speak, for as long as they speak it.
        deadline.Stop();

        Log.RelayingBlind(_logger, listenerName, host, original.Address.ToString(), original.Port);
        RecordConnection(connection, generation, listener, host, original.Port, passedThrough: true, AccessOutcome.PassedThrough, "no policy matches " + host + ":" + original.Port + "; relayed blind (Unmatched PassThrough)");
        await _relay.RelayAsync(connection, upstream, listenerName, host, original.Port, stillBlind).ConfigureAwait(false);
    }

    private static bool StillBlind(ProxySnapshot snapshot, string listenerName, string host, int port) =>
        snapshot.Listeners.TryGetValue(listenerName, out var listener) &&
        listener.Unmatched.LetsThrough() &&
        !snapshot.Policies.CanMatchHost(host, port);

    /// <summary>
    /// Why relaying this connection would send it back into the proxy, or null. A connection made to
    /// a listener directly (not redirected) names the listener itself; a connection the proxy made
    /// itself came back because the rules do not exempt the proxy's uid, and following it would
    /// open connections without end.
    /// </summary>
    private string? LoopReason(ConnectionContext connection, ProxySnapshot snapshot, IPEndPoint original)
    {
        if (connection.LocalEndPoint is IPEndPoint local && Normalize(local).Equals(original))
        {
            return "it was made to the listener itself";
        }

        foreach (var endPoint in snapshot.Listeners.Values.Select(l => l.BindEndPoint).Append(snapshot.AdminEndPoint).Append(snapshot.Admin.ProbeEndPoint).OfType<IPEndPoint>())
        {
            var bound = Normalize(endPoint);
            if (bound.Port == original.Port && (bound.Address.Equals(original.Address) || bound.Address.Equals(IPAddress.Any) || bound.Address.Equals(IPAddress.IPv6Any)))
            {
                return "its original destination is the proxy's own endpoint " + bound;
            }
        }

        if (_ownUid >= 0 && connection.RemoteEndPoint is IPEndPoint client &&
            TcpSocketLookup.Find("/proc", Normalize(client), original) is { Inode: not 0 } row && row.Uid == _ownUid)
        {
            return "the proxy's own upstream connection was redirected back to it (exempt the proxy's uid: secretless-proxy iptables --proxy-uid " + _ownUid + ")";
        }

        return null;
    }

    private static IPEndPoint Normalize(IPEndPoint endPoint) =>
        endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port) : endPoint;

    /// <summary>The proxy's effective uid from <c>/proc/self/status</c> ("Uid: real effective saved fs"); -1 when unknown.</summary>
    private static int ReadEffectiveUid()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                    return fields.Length > 2 && int.TryParse(fields[2], out var uid) ? uid : -1;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return -1;
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.TransparentRefused, LogLevel.Information, "Refused a redirected connection to {Host}:{Port} on listener {Listener}: {Reason}")]
        public static partial void Refused(ILogger logger, string listener, string host, int port, string reason);

        [LoggerMessage(EventIds.TransparentLoopRefused, LogLevel.Warning, "Refused a connection to {Address}:{Port} on listener {Listener} that would loop: {Reason}")]
        public static partial void LoopRefused(ILogger logger, string listener, string address, int port, string reason);

        [LoggerMessage(EventIds.TransparentBlind, LogLevel.Information, "Relaying a redirected connection to {Host} ({Address}:{Port}) on listener {Listener} blind")]
        public static partial void RelayingBlind(ILogger logger, string listener, string host, string address, int port);

        // The name itself is not logged: it is whatever bytes the client chose.
        [LoggerMessage(EventIds.TransparentInvalidServerName, LogLevel.Information, "A redirected TLS connection to {Address}:{Port} on listener {Listener} names no DNS name in its SNI: not intercepted")]
        public static partial void InvalidServerName(ILogger logger, string listener, string address, int port);

        [LoggerMessage(EventIds.TransparentHttp, LogLevel.Debug, "Redirected plain HTTP to {Address}:{Port} on listener {Listener}: deciding each request by its Host")]
        public static partial void Http(ILogger logger, string listener, string address, int port);
    }
}
