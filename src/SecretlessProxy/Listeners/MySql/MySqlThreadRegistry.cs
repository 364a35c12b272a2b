using System.Collections.Concurrent;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// The connection ids the proxy's greetings gave apps, each mapped to the server thread id of the
/// session behind it. The greeting goes out before the proxy logs in upstream (the app has to name
/// its database before policy can decide), so the id a client remembers for <c>KILL QUERY</c>
/// (MySqlConnector's cancellation, the mariadb client's Ctrl-C) is the proxy's; the splice rewrites a
/// <c>KILL</c> of such an id, on any connection of the same listener, to the server's id.
/// </summary>
/// <remarks>
/// The proxy's ids start at 2^30, far above the ids a server hands out (it counts from 1), so an
/// unrewritten KILL of a proxy id never hits someone else's session.
/// </remarks>
internal sealed class MySqlThreadRegistry
{
    private const uint FirstId = 1u << 30;
    private readonly ConcurrentDictionary<uint, (string Listener, uint ServerId)> _sessions = new();
    private uint _next = FirstId;

    /// <summary>A fresh id for a greeting.</summary>
    public uint Allocate()
    {
        while (true)
        {
            var id = Interlocked.Increment(ref _next);
            if (id is >= FirstId and < int.MaxValue && !_sessions.ContainsKey(id))
            {
                return id;
            }

            // Wrapped past int.MaxValue (clients keep the id as a signed 32-bit number): start over.
            Interlocked.CompareExchange(ref _next, FirstId, id);
        }
    }

    public void Register(uint proxyId, string listener, uint serverId) => _sessions[proxyId] = (listener, serverId);

    public void Unregister(uint proxyId) => _sessions.TryRemove(proxyId, out _);

    /// <summary>The server's thread id behind <paramref name="proxyId"/>, when that session belongs to <paramref name="listener"/>.</summary>
    public bool TryResolve(string listener, ulong proxyId, out uint serverId)
    {
        serverId = 0;
        if (proxyId > uint.MaxValue || !_sessions.TryGetValue((uint)proxyId, out var session) || session.Listener != listener)
        {
            return false;
        }

        serverId = session.ServerId;
        return true;
    }
}
