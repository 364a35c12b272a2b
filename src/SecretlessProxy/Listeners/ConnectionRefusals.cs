using System.Collections.Concurrent;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners;

/// <summary>
/// Reports connections a listener refused (over <c>MaxConnections</c>) or closed before their first
/// request (past <c>HandshakeTimeout</c>): every one is counted in
/// <c>secretless.proxy.connections.refused</c>, but a flood writes one log line per listener and
/// reason per <see cref="LogInterval"/>, saying how many were not logged, so the log cannot be
/// used to bury other lines or fill the disk.
/// </summary>
internal sealed partial class ConnectionRefusals
{
    public const string MaxConnectionsReason = "max-connections";
    public const string HandshakeTimeoutReason = "handshake-timeout";

    internal static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    private readonly ProxyMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<(string Listener, string Reason), LogGate> _gates = new();

    public ConnectionRefusals(ProxyMetrics metrics, TimeProvider time, ILogger<ConnectionRefusals> logger)
    {
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    public void OverMaxConnections(string listener, int maxConnections)
    {
        _metrics.ConnectionRefused(listener, MaxConnectionsReason);
        if (ShouldLog(listener, MaxConnectionsReason, out var notLogged))
        {
            Log.Refused(_logger, listener, maxConnections, notLogged);
        }
    }

    /// <param name="stage">What the connection had not finished, for the operator: "the CONNECT request head", "the TLS handshake"...</param>
    public void HandshakeTimedOut(string listener, string stage, TimeSpan timeout)
    {
        _metrics.ConnectionRefused(listener, HandshakeTimeoutReason);
        if (ShouldLog(listener, HandshakeTimeoutReason, out var notLogged))
        {
            Log.TimedOut(_logger, listener, stage, timeout, notLogged);
        }
    }

    private bool ShouldLog(string listener, string reason, out long notLogged)
    {
        var gate = _gates.GetOrAdd((listener, reason), static _ => new LogGate());
        var now = _time.GetTimestamp();
        lock (gate)
        {
            if (gate.LastLogged is { } last && _time.GetElapsedTime(last, now) < LogInterval)
            {
                gate.NotLogged++;
                notLogged = 0;
                return false;
            }

            gate.LastLogged = now;
            notLogged = gate.NotLogged;
            gate.NotLogged = 0;
            return true;
        }
    }

    private sealed class LogGate
    {
        public long? LastLogged;
        public long NotLogged;
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.ConnectionRefused, LogLevel.Warning, "Refused a connection on listener {Listener}: {MaxConnections} connections are open (MaxConnections); {NotLogged} more refused since the last such line")]
        public static partial void Refused(ILogger logger, string listener, int maxConnections, long notLogged);

        [LoggerMessage(EventIds.HandshakeTimedOut, LogLevel.Information, "Closed a connection on listener {Listener}: {Stage} did not complete within {HandshakeTimeout} (HandshakeTimeout); {NotLogged} more closed since the last such line")]
        public static partial void TimedOut(ILogger logger, string listener, string stage, TimeSpan handshakeTimeout, long notLogged);
    }
}
