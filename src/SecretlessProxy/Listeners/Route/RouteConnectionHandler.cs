using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Route;

/// <summary>
/// Connection middleware of a Route listener, below HTTP: a new connection must send its first
/// byte within the listener's <c>HandshakeTimeout</c>. Kestrel would otherwise hold a silent new
/// connection for its keep-alive timeout (130 s by default), which is how a client fills
/// <c>MaxConnections</c> without sending anything; once bytes arrive, Kestrel's request-head
/// timeout bounds the rest of the head.
/// </summary>
internal sealed class RouteConnectionHandler
{
    private readonly ProxyState _state;
    private readonly ConnectionRefusals _refusals;
    private readonly TimeProvider _time;

    public RouteConnectionHandler(ProxyState state, ConnectionRefusals refusals, TimeProvider time)
    {
        _state = state;
        _refusals = refusals;
        _time = time;
    }

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next, string listenerName)
    {
        var limits = _state.Snapshot.Listeners.GetValueOrDefault(listenerName)?.Limits ?? ListenerLimits.Default;
        using (var deadline = new HandshakeDeadline(limits.HandshakeTimeout, _time, connection.ConnectionClosed))
        {
            if (!await deadline.WaitForFirstBytesAsync(connection.Transport.Input).ConfigureAwait(false))
            {
                if (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
                {
                    _refusals.HandshakeTimedOut(listenerName, "the first request", deadline.Timeout);
                }

                return;
            }
        }

        await next(connection).ConfigureAwait(false);
    }
}
