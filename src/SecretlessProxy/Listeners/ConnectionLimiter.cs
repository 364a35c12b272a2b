using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners;

/// <summary>
/// The first connection middleware of every listener: at most <c>MaxConnections</c> connections
/// open at once per listener. Kestrel's own <c>MaxConcurrentConnections</c> is server-wide, so one
/// busy or hostile client on one listener could starve the others and the admin endpoint; here a
/// connection over the cap is refused at once (an HTTP listener answers 503, a Transparent or
/// Postgres listener, whose client may speak TLS or the database protocol, is closed) and the
/// listener keeps serving the connections it has. The cap is read from the current snapshot, so a
/// reload changes it for the next connection.
/// </summary>
internal sealed class ConnectionLimiter
{
    private static readonly byte[] Busy = BuildBusyResponse();

    private readonly ProxyState _state;
    private readonly ConnectionRefusals _refusals;
    private readonly ConcurrentDictionary<string, OpenConnections> _open = new(StringComparer.OrdinalIgnoreCase);

    public ConnectionLimiter(ProxyState state, ConnectionRefusals refusals)
    {
        _state = state;
        _refusals = refusals;
    }

    /// <summary>Connections open on <paramref name="listenerName"/> now (those past the cap are not counted).</summary>
    public int OpenCount(string listenerName) => _open.TryGetValue(listenerName, out var open) ? Volatile.Read(ref open.Count) : 0;

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next, string listenerName)
    {
        var listener = _state.Snapshot.Listeners.GetValueOrDefault(listenerName);
        var max = listener?.Limits.MaxConnections ?? ListenerLimits.DefaultMaxConnections;
        var open = _open.GetOrAdd(listenerName, static _ => new OpenConnections());
        if (Interlocked.Increment(ref open.Count) > max)
        {
            Interlocked.Decrement(ref open.Count);
            _refusals.OverMaxConnections(listenerName, max);
            if (listener is not null && ListenerKindRegistry.TryFind(listener.Mode, out var kind) && kind.ClientSpeaksHttpFirst)
            {
                await RespondBusyAsync(connection).ConfigureAwait(false);
            }

            // Returning closes the connection.
            return;
        }

        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref open.Count);
        }
    }

    /// <summary>
    /// Written before reading anything: the request is not parsed, so the answer is the same
    /// whatever the client sent, and a refused connection costs no more than these bytes.
    /// </summary>
    private static async Task RespondBusyAsync(ConnectionContext connection)
    {
        try
        {
            await connection.Transport.Output.WriteAsync(Busy, connection.ConnectionClosed).ConfigureAwait(false);
            await connection.Transport.Output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException)
        {
            // The client left first; there is nobody to tell.
        }
    }

    private static byte[] BuildBusyResponse()
    {
        var body = "{\"type\":\"urn:secretless-proxy:problem:too-many-connections\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"the listener has as many connections open as its MaxConnections allows; retry later\"}";
        return Encoding.ASCII.GetBytes(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
            body.Length + "\r\n\r\n" + body);
    }

    private sealed class OpenConnections
    {
        public int Count;
    }
}
