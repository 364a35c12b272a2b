using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// Maps the BackendKeyData the proxy gave an app to the server's, so a CancelRequest (which arrives
/// on a new connection, with no login) reaches the right backend. The app never sees the server's
/// key; a guessed process id without its 32-bit key cancels nothing.
/// </summary>
internal sealed class PostgresCancelRegistry
{
    private readonly ConcurrentDictionary<int, Entry> _sessions = new();

    /// <summary>Registers a session and returns the key data to give the app.</summary>
    public (int ProcessId, int SecretKey) Register(string listener, int serverProcessId, int serverSecretKey)
    {
        var secret = RandomNumberGenerator.GetInt32(int.MinValue, int.MaxValue);
        while (true)
        {
            // Positive, like a real backend pid, so clients that print it see nothing odd.
            var pid = RandomNumberGenerator.GetInt32(1, int.MaxValue);
            if (_sessions.TryAdd(pid, new Entry(listener, secret, serverProcessId, serverSecretKey)))
            {
                return (pid, secret);
            }
        }
    }

    public void Unregister(int processId) => _sessions.TryRemove(processId, out _);

    /// <summary>The server's key data for a cancel the app sent, when pid, key and listener all match.</summary>
    public bool TryResolve(string listener, int processId, int secretKey, out int serverProcessId, out int serverSecretKey)
    {
        if (_sessions.TryGetValue(processId, out var entry) && entry.Listener == listener &&
            CryptographicOperations.FixedTimeEquals(BitConverter.GetBytes(entry.SecretKey), BitConverter.GetBytes(secretKey)))
        {
            serverProcessId = entry.ServerProcessId;
            serverSecretKey = entry.ServerSecretKey;
            return true;
        }

        serverProcessId = 0;
        serverSecretKey = 0;
        return false;
    }

    private sealed record Entry(string Listener, int SecretKey, int ServerProcessId, int ServerSecretKey);
}
