using SecretlessProxy.Core;
using SecretlessProxy.Listeners;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Configuration;

/// <summary>Transparent listeners: a tcp:// bind for iptables to redirect to, no configured destination.</summary>
public sealed partial class SnapshotCompiler
{
    private static ListenerDefinition? CompileTransparentListener(string name, string key, ListenerOptions listener, UnmatchedBehavior globalUnmatched, IReadOnlyList<string> injectedQueryParameters, List<ConfigError> errors)
    {
        var start = errors.Count;

        // iptables REDIRECT can only send to a local TCP port, so a Unix socket or an http:// URL
        // (which reads as if the listener spoke only HTTP) would mislead.
        var bind = ParseTcpBindUrl(listener.Url, key + ":Url", errors, example: "tcp://127.0.0.1:15001");
        var unmatched = ParseUnmatched(listener.Unmatched, key + ":Unmatched", errors) ?? globalUnmatched;

        if (listener.Upstream is not null)
        {
            errors.Add(new(key + ":Upstream", "is not used by a Transparent listener: each connection's original destination is its upstream"));
        }

        if (listener.AllowedConnectPorts is not null)
        {
            errors.Add(new(key + ":AllowedConnectPorts", "applies to Forward listeners only; a Transparent listener gets the ports iptables redirects (secretless-proxy iptables --redirect-ports)"));
        }

        QueryRedactor? queryRecording = null;
        if (listener.RecordQuery == true)
        {
            queryRecording = new QueryRedactor((listener.RedactQueryParameters ?? []).Concat(injectedQueryParameters));
        }
        else if (listener.RedactQueryParameters is { Length: > 0 })
        {
            errors.Add(new(key + ":RedactQueryParameters", "has no effect unless RecordQuery is true"));
        }

        var limits = CompileListenerLimits(key, listener, errors);
        return errors.Count > start || bind is null
            ? null
            : new ListenerDefinition(name, ListenerMode.Transparent, bind, upstream: null, unmatched, queryRecording, limits: limits);
    }

    /// <summary>The listener kind that needs a local CA to mint leaves for intercepted TLS, for the error when LocalCa is missing; null when none does.</summary>
    private static string? LocalCaNeededBy(IEnumerable<ListenerDefinition> listeners)
    {
        foreach (var listener in listeners)
        {
            if (listener.Mode is ListenerMode.Forward or ListenerMode.Transparent)
            {
                return "a " + listener.Mode + " listener";
            }
        }

        return null;
    }
}
