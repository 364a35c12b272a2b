using System.Diagnostics;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Attestation;
using SecretlessProxy.Core;
using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners.Redis;

/// <summary>
/// A Redis listener's connections, below HTTP. The app connects without a password; at its first
/// bytes the proxy decides by policy (caller, identity, the listener's server), connects to the
/// server (TLS from the first byte unless <c>Tls:Mode</c> is Disable), logs in with the listener's
/// credential and then passes the app's commands through <see cref="RedisCommandFilter"/>, which
/// keeps the app on that ACL user. The server's replies are copied to the app unparsed.
/// </summary>
internal sealed partial class RedisConnectionHandler
{
    private readonly ProxyState _state;
    private readonly ProxyMetrics _metrics;
    private readonly AccessPipeline _pipeline;
    private readonly TimeProvider _time;
    private readonly ConnectionRefusals _refusals;
    private readonly ILogger _logger;

    public RedisConnectionHandler(ProxyState state, ProxyMetrics metrics, AccessPipeline pipeline, ConnectionRefusals refusals, TimeProvider time, ILogger<RedisConnectionHandler> logger)
    {
        _state = state;
        _metrics = metrics;
        _pipeline = pipeline;
        _refusals = refusals;
        _time = time;
        _logger = logger;
    }

    public async Task OnConnectionAsync(ConnectionContext connection, string listenerName)
    {
        var generation = _state.Current;
        if (!generation.Snapshot.Listeners.TryGetValue(listenerName, out var listener) || listener.Settings is not DatabaseListenerSettings db)
        {
            // Removed or re-purposed by a reload while the socket still accepts: fail closed.
            await WriteErrorAsync(connection.Transport.Output, "ERR", "secretless-proxy: listener '" + listenerName + "' is not configured").ConfigureAwait(false);
            return;
        }

        // The listener's HandshakeTimeout, on the injected clock: from accept to a logged-in session.
        using var deadline = new HandshakeDeadline(listener.Limits.HandshakeTimeout, _time, connection.ConnectionClosed);

        // Nothing is decided, fetched or connected for a socket that never speaks (a port probe).
        if (!await deadline.WaitForFirstBytesAsync(connection.Transport.Input).ConfigureAwait(false))
        {
            if (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
            {
                _refusals.HandshakeTimedOut(listener.Name, "the first Redis command", deadline.Timeout);
            }

            return;
        }

        Session? session;
        try
        {
            session = await EstablishAsync(connection, generation, listener, db, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!connection.ConnectionClosed.IsCancellationRequested)
        {
            // The deadline ran out while the workload identity or the credential was still being fetched.
            Log.ClientRejected(_logger, listener.Name, "the login did not complete within the handshake timeout");
            await WriteErrorAsync(connection.Transport.Output, "ERR", "secretless-proxy: could not log in within " + deadline.Timeout.TotalSeconds + " s: the credential or the workload identity is still being fetched").ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (session is null)
        {
            return;
        }

        await using (session.Server.ConfigureAwait(false))
        {
            deadline.Stop();
            var filter = new RedisCommandFilter(session.AuthCommand);
            await SpliceAsync(connection, session.Server, filter, listener.Name).ConfigureAwait(false);
            if (filter.AuthReplaced + filter.HelloAuthStripped + filter.ResetRefused > 0)
            {
                Log.LoginCommandsRewritten(_logger, listener.Name, filter.AuthReplaced, filter.HelloAuthStripped, filter.ResetRefused);
            }
        }
    }

    /// <summary>Decide, fetch the credential, connect and log in; null when the app was sent an error.</summary>
    private async Task<Session?> EstablishAsync(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, DatabaseListenerSettings db, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var destination = DatabaseDestination.For(RedisWire.Scheme, db.Host, db.Port, RedisWire.Database);
        using var activity = ProxyTelemetry.StartDatabaseConnection(listener.Name, connection.LocalEndPoint, RedisWire.DatabaseSystem, destination, RedisWire.Database);
        try
        {
            return await LogInAsync(connection, generation, listener, db, destination, activity, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(started);
            activity?.SetTag(ProxyTelemetry.Tags.HandshakeDuration, elapsed.TotalMilliseconds);
            _metrics.AddedLatency(listener.Name, elapsed);
        }
    }

    private async Task<Session?> LogInAsync(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, DatabaseListenerSettings db, RequestDestination destination, Activity? activity, CancellationToken cancellationToken)
    {
        var output = connection.Transport.Output;
        var access = new AccessRequest(generation, listener, destination, activity)
        {
            Caller = connection.Features.Get<CallerFeature>(),
            OneAccessPerConnection = true,
            LoginCredential = db.CredentialName,
            ClientClosed = connection.ConnectionClosed,
        };
        var decision = await _pipeline.DecideAsync(access, cancellationToken).ConfigureAwait(false);
        if (decision is AccessRefusal refusal)
        {
            if (!refusal.AppIsGone)
            {
                await WriteErrorAsync(output, CodeOf(refusal.Outcome), "secretless-proxy: " + MessageOf(refusal, listener)).ConfigureAwait(false);
            }

            return null;
        }

        var grant = (AccessGrant)decision;
        // The pipeline grants a DatabaseLogin policy only with a credential that has a user name.
        var credential = grant.Credential!;
        var user = credential.Username!;
        activity?.SetTag(ProxyTelemetry.Tags.DatabaseUser, user);
        Stream? server = null;
        try
        {
            server = await DatabaseServerConnector.ConnectAsync(db, cancellationToken).ConfigureAwait(false);
            if (db.TlsMode != DatabaseTlsMode.Disable)
            {
                // Redis speaks TLS from the first byte: no in-protocol upgrade to ask for.
                server = await DatabaseServerConnector.AuthenticateTlsAsync(server, db, cancellationToken).ConfigureAwait(false);
            }

            var (command, method) = await RedisLogin.LogInAsync(server, user, credential.Secret, cancellationToken).ConfigureAwait(false);
            activity?.SetTag(ProxyTelemetry.Tags.DatabaseAuthMethod, method);
            grant.Complete(AccessOutcome.Connected);
            var session = new Session(server, command);
            server = null;
            return session;
        }
        catch (Exception ex)
        {
            AccessRefusal? failed;
            var code = "ERR";
            if (ex is RedisLoginException login)
            {
                code = login.Handshake ? "ERR" : login.Code;
                failed = grant.Refuse(
                    login.Handshake ? AccessOutcome.HandshakeFailed : AccessOutcome.LoginFailed,
                    "the proxy's login to " + db.Host + ":" + db.Port + " as \"" + user + "\" with credential '" + db.CredentialName + "' failed: " + login.Message);
            }
            else if (ex is DatabaseConnectException connect)
            {
                failed = grant.Refuse(connect.Outcome, connect.Message);
            }
            else if (ex is not (OperationCanceledException or IOException))
            {
                Log.LoginError(_logger, listener.Name, db.Host, db.Port, ex.GetType().Name);
                failed = grant.Refuse(AccessOutcome.ProxyError, "the proxy failed while logging in to " + db.Host + ":" + db.Port + " (" + ex.GetType().Name + ")");
            }
            else if (!connection.ConnectionClosed.IsCancellationRequested)
            {
                failed = grant.Refuse(AccessOutcome.UpstreamFailed, ex is OperationCanceledException
                    ? "connecting and logging in to the Redis server " + db.Host + ":" + db.Port + " took longer than " + db.HandshakeTimeout.TotalSeconds + " s"
                    : "the connection to the Redis server " + db.Host + ":" + db.Port + " failed during login");
            }
            else
            {
                grant.Complete(AccessOutcome.ClientAborted, "the app closed the connection during the handshake");
                failed = null;
            }

            if (failed is not null)
            {
                await WriteErrorAsync(output, code, "secretless-proxy: " + failed.Reason).ConfigureAwait(false);
            }

            return null;
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The app's commands through the filter to the server, the server's replies copied back, until
    /// either side closes. A protocol error in the app's stream ends the connection with that error,
    /// written once the reply copy has stopped (a pipe has one writer at a time).
    /// </summary>
    /// <remarks>
    /// Kestrel reports an app's half-close (shutting down only its sending side) as the end of the
    /// connection, so replies still in flight then are not relayed; Redis clients do not half-close.
    /// </remarks>
    private async Task SpliceAsync(ConnectionContext connection, Stream server, RedisCommandFilter filter, string listener)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        var toServer = FilterToServerAsync(connection.Transport.Input, server, filter, stop.Token);
        var toApp = server.CopyToAsync(connection.Transport.Output, stop.Token);
        await Task.WhenAny(toServer, toApp).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        await server.DisposeAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(toServer, toApp).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException or ConnectionResetException)
        {
            // Either side closing (or the cancel above) ends both copies; that is the normal end.
        }

        if (toServer.IsCompletedSuccessfully && toServer.Result is { } error)
        {
            // As the server does with a protocol error: the error, then the connection closes.
            Log.ClientRejected(_logger, listener, error);
            await WriteErrorAsync(connection.Transport.Output, "ERR", error).ConfigureAwait(false);
        }
    }

    /// <summary>Filters the app's bytes to the server until the app closes; returns the protocol error that stopped it, if any.</summary>
    private static async Task<string?> FilterToServerAsync(PipeReader input, Stream server, RedisCommandFilter filter, CancellationToken cancellationToken)
    {
        var toServer = PipeWriter.Create(server, new StreamPipeWriterOptions(leaveOpen: true));
        while (true)
        {
            var read = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = read.Buffer;
            var error = filter.Filter(ref buffer, toServer);
            input.AdvanceTo(buffer.Start, read.Buffer.End);
            var flushed = await toServer.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (error is not null)
            {
                return error;
            }

            if (read.IsCompleted || flushed.IsCompleted)
            {
                return null;
            }
        }
    }

    /// <summary>The error code (the reply's first word) for a refusal the pipeline decided.</summary>
    private static string CodeOf(AccessOutcome outcome) => outcome == AccessOutcome.Denied ? "NOPERM" : "ERR";

    private static string MessageOf(AccessRefusal refusal, ListenerDefinition listener) => refusal.Outcome switch
    {
        AccessOutcome.Denied => "denied by policy: " + refusal.Reason,
        AccessOutcome.HandshakeTimeout => "could not log in within " + listener.Limits.HandshakeTimeout.TotalSeconds + " s: " + refusal.Reason,
        _ => refusal.Reason,
    };

    private static async Task WriteErrorAsync(PipeWriter output, string code, string message)
    {
        try
        {
            await output.WriteAsync(RedisWire.Error(code, message)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionResetException or InvalidOperationException)
        {
            // The app is gone; there is nobody to tell.
        }
    }

    /// <summary>A logged-in server connection and the AUTH that logged it in.</summary>
    private sealed record Session(Stream Server, byte[] AuthCommand);

    private static partial class Log
    {
        // Debug: any local process can send these for free, so they must not flood the log.
        [LoggerMessage(EventIds.DatabaseClientRejected, LogLevel.Debug, "Rejected a client on listener {Listener}: {Reason}")]
        public static partial void ClientRejected(ILogger logger, string listener, string reason);

        [LoggerMessage(EventIds.DatabaseLoginError, LogLevel.Warning, "Logging in on listener {Listener} to {Host}:{Port} failed unexpectedly: {Error}")]
        public static partial void LoginError(ILogger logger, string listener, string host, int port, string error);

        [LoggerMessage(EventIds.RedisLoginCommandsRewritten, LogLevel.Debug, "A connection on listener {Listener} sent its own login: {Auth} AUTH answered with the proxy's, {Hello} HELLO without AUTH, {Reset} RESET refused")]
        public static partial void LoginCommandsRewritten(ILogger logger, string listener, int auth, int hello, int reset);
    }
}
