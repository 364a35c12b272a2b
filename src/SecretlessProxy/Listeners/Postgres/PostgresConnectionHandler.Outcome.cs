using System.Diagnostics;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using SecretlessProxy.Core;
using SecretlessProxy.Identity;
using SecretlessProxy.Policy;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>How a connection's handshake ended: one audit record, the span's outcome, a metric and a log line.</summary>
internal sealed partial class PostgresConnectionHandler
{
    private sealed class ConnectionOutcome(PostgresConnectionHandler handler, Activity? activity, string listener, RequestDestination destination, Caller caller, WorkloadIdentity? identity, long started)
    {
        public string? User { get; set; }

        /// <summary>The app is told why (a FATAL ErrorResponse) and the connection ends.</summary>
        public async Task RefuseAsync(PipeWriter output, string decision, CompiledPolicy? policy, string outcome, string sqlState, string message, string? credentialName = null, string? credentialSource = null)
        {
            Record(decision, message, policy, outcome, credentialName, credentialSource);
            activity?.SetTag(ProxyTelemetry.Tags.Reason, message);
            activity?.SetStatus(ActivityStatusCode.Error, outcome);
            Log.ConnectionRefused(handler._logger, listener, destination.Host, destination.Port, destination.Path, outcome, message);
            await WriteErrorAsync(output, sqlState, message, CancellationToken.None).ConfigureAwait(false);
        }

        /// <summary>The app went away mid-handshake: recorded, nobody to tell.</summary>
        public void Abandoned(CompiledPolicy? policy, string credentialName, string credentialSource) =>
            Record("allow", "the app closed the connection during the handshake", policy, "client-aborted", credentialName, credentialSource);

        public void Connected(CompiledPolicy policy, string credentialName, string credentialSource, string database)
        {
            Record("allow", policy.AllowDecision.Reason, policy, "connected", credentialName, credentialSource);
            Log.Connected(handler._logger, listener, destination.Host, destination.Port, database, User ?? "", policy.Name, credentialName, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        private void Record(string decision, string reason, CompiledPolicy? policy, string outcome, string? credentialName, string? credentialSource)
        {
            var elapsed = Stopwatch.GetElapsedTime(started);
            activity?.SetTag(ProxyTelemetry.Tags.Outcome, outcome);
            activity?.SetTag(ProxyTelemetry.Tags.HandshakeDuration, elapsed.TotalMilliseconds);
            handler._metrics.Request(listener, policy?.Name, outcome == "denied" ? "deny" : decision);
            handler._metrics.AddedLatency(listener, elapsed);
            handler._audit.Record(new AuditRecord(
                handler._time.GetUtcNow(), listener, decision, reason, policy?.Name, decision == "allow" ? credentialName : null,
                decision == "allow" ? credentialSource : null, outcome,
                destination.Scheme, destination.Host, destination.Port, destination.Method, destination.Path, activity?.TraceId.ToString(),
                caller, identity?.Subject, User));
            ProxyTelemetry.AddDecisionEvent(activity, decision, reason, outcome);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.DatabaseConnected, LogLevel.Debug, "Connected listener {Listener} to {Host}:{Port} database {Database} as {User} by policy {Policy} with credential {CredentialName} in {HandshakeMs} ms")]
        public static partial void Connected(ILogger logger, string listener, string host, int port, string database, string user, string policy, string credentialName, double handshakeMs);

        [LoggerMessage(EventIds.DatabaseConnectionRefused, LogLevel.Information, "Refused a connection on listener {Listener} to {Host}:{Port}{Path} ({Outcome}): {Reason}")]
        public static partial void ConnectionRefused(ILogger logger, string listener, string host, int port, string path, string outcome, string reason);

        // Debug: any local process can send these for free, so they must not flood the log.
        [LoggerMessage(EventIds.DatabaseClientRejected, LogLevel.Debug, "Rejected a client on listener {Listener}: {Reason}")]
        public static partial void ClientRejected(ILogger logger, string listener, string reason);

        [LoggerMessage(EventIds.DatabaseCancelForwarded, LogLevel.Debug, "Forwarded a cancel request from listener {Listener} to {Host}:{Port}")]
        public static partial void CancelForwarded(ILogger logger, string listener, string host, int port);

        [LoggerMessage(EventIds.DatabaseCancelIgnored, LogLevel.Debug, "Ignored a cancel request on listener {Listener}: no session of this proxy has that key")]
        public static partial void CancelIgnored(ILogger logger, string listener);

        [LoggerMessage(EventIds.DatabaseCancelFailed, LogLevel.Warning, "A cancel request on listener {Listener} could not be delivered: {Reason}")]
        public static partial void CancelFailed(ILogger logger, string listener, string reason);

        [LoggerMessage(EventIds.DatabaseWeakAuthenticationRefused, LogLevel.Warning, "Refused the authentication the database server {Host}:{Port} asked for on listener {Listener} (Tls Mode {TlsMode}, {Outcome}): {Reason}")]
        public static partial void AuthenticationRequestRefused(ILogger logger, string listener, string host, int port, string tlsMode, string outcome, string reason);

        [LoggerMessage(EventIds.DatabaseLoginError, LogLevel.Warning, "Logging in on listener {Listener} to {Host}:{Port} failed unexpectedly: {Error}")]
        public static partial void LoginError(ILogger logger, string listener, string host, int port, string error);
    }
}
