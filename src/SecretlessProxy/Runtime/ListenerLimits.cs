namespace SecretlessProxy.Runtime;

/// <summary>
/// What one listener lets a connection hold: how long it may take before its first request (or,
/// for a database, its login) and how many connections may be open at once. Half-open and idle
/// connections cost a socket, a buffer and a task each; without these a client that connects and
/// says nothing could exhaust them.
/// </summary>
internal sealed class ListenerLimits
{
    /// <summary>Ten seconds: generous for loopback clients and a database login, short enough that stalled connections do not pile up.</summary>
    public static readonly TimeSpan DefaultHandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The longest handshake timeout accepted: beyond it the deadline no longer protects anything.</summary>
    public static readonly TimeSpan MaxHandshakeTimeout = TimeSpan.FromMinutes(5);

    public const int DefaultMaxConnections = 1024;

    /// <summary>Far above what one sidecar's app needs; a typo like 10000000 is caught rather than meaning "no cap".</summary>
    public const int MaxMaxConnections = 1_000_000;

    public static readonly ListenerLimits Default = new(DefaultHandshakeTimeout, DefaultMaxConnections);

    public ListenerLimits(TimeSpan handshakeTimeout, int maxConnections)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(handshakeTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        HandshakeTimeout = handshakeTimeout;
        MaxConnections = maxConnections;
    }

    /// <summary>From accept to the first HTTP request (or a logged-in database session).</summary>
    public TimeSpan HandshakeTimeout { get; }

    /// <summary>Connections open at once; the next one is refused while this many are open.</summary>
    public int MaxConnections { get; }
}
