using SecretlessProxy.Core;
using SecretlessProxy.Listeners;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Configuration;

/// <summary>Every listener's handshake deadline and connection cap.</summary>
public sealed partial class SnapshotCompiler
{
    private static ListenerLimits CompileListenerLimits(string key, ListenerOptions listener, List<ConfigError> errors)
    {
        var timeout = Positive(listener.HandshakeTimeout, ListenerLimits.DefaultHandshakeTimeout, key + ":HandshakeTimeout", errors);
        if (timeout > ListenerLimits.MaxHandshakeTimeout)
        {
            errors.Add(new(key + ":HandshakeTimeout", "must be at most " + ListenerLimits.MaxHandshakeTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture) + ": a longer deadline lets stalled connections pile up"));
        }

        var max = listener.MaxConnections ?? ListenerLimits.DefaultMaxConnections;
        if (max is < 1 or > ListenerLimits.MaxMaxConnections)
        {
            errors.Add(new(key + ":MaxConnections", max + " is not between 1 and " + ListenerLimits.MaxMaxConnections));
        }

        return timeout > TimeSpan.Zero && timeout <= ListenerLimits.MaxHandshakeTimeout && max is >= 1 and <= ListenerLimits.MaxMaxConnections
            ? new ListenerLimits(timeout, max)
            : ListenerLimits.Default;
    }
}
