using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Attestation;
using SecretlessProxy.Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Injection;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

using SecretlessProxy.Listeners.Database;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// A Postgres listener's connections, below HTTP. Toward the app the proxy is a PostgreSQL server
/// that asks for no password; toward the database it is a client that logs in with the listener's
/// credential. Policy decides once per connection (caller, identity, database), the login happens,
/// the server's ParameterStatus, BackendKeyData (replaced by the proxy's own, for cancellation) and
/// ReadyForQuery reach the app, and from then on bytes are spliced both ways without parsing.
/// </summary>
internal sealed partial class PostgresConnectionHandler
{
    private readonly ProxyState _state;
    private readonly PostgresCancelRegistry _cancels;
    private readonly ProxyMetrics _metrics;
    private readonly AccessPipeline _pipeline;
    private readonly TimeProvider _time;
    private readonly ConnectionRefusals _refusals;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, SaltedPasswordCache> _saltedPasswords = new(StringComparer.OrdinalIgnoreCase);

    public PostgresConnectionHandler(ProxyState state, PostgresCancelRegistry cancels, ProxyMetrics metrics, AccessPipeline pipeline, ConnectionRefusals refusals, TimeProvider time, ILogger<PostgresConnectionHandler> logger)
    {
        _refusals = refusals;
        _state = state;
        _cancels = cancels;
        _metrics = metrics;
        _pipeline = pipeline;
        _time = time;
        _logger = logger;
    }

    public async Task OnConnectionAsync(ConnectionContext connection, string listenerName)
    {
        var generation = _state.Current;
        if (!generation.Snapshot.Listeners.TryGetValue(listenerName, out var listener) || listener.Settings is not DatabaseListenerSettings db)
        {
            // Removed or re-purposed by a reload while the socket still accepts: fail closed.
            await WriteErrorAsync(connection.Transport.Output, "08004", "listener '" + listenerName + "' is not configured", CancellationToken.None).ConfigureAwait(false);
            return;
        }

        // The listener's HandshakeTimeout, on the injected clock: from accept to a logged-in session.
        using var deadline = new HandshakeDeadline(listener.Limits.HandshakeTimeout, _time, connection.ConnectionClosed);
        var original = connection.Transport;
        SslStream? appTls = null;
        LeafCertificateLease? appLease = null;
        ServerConnection? server = null;
        var registered = 0;
        try
        {
            PostgresStartupMessage? startup;
            try
            {
                startup = await ReadStartupAsync(connection, listener.Name, db, tls => appTls = tls, lease => appLease = lease, deadline.Token).ConfigureAwait(false);
            }
            catch (PostgresProtocolException ex)
            {
                Log.ClientRejected(_logger, listener.Name, ex.Message);
                await WriteErrorAsync(connection.Transport.Output, ex.SqlState, ex.Message, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
            {
                // The app connected and did not send its startup message (or finish its TLS) in time:
                // closed without an answer, as the server does (authentication_timeout).
                _refusals.HandshakeTimedOut(listener.Name, "the PostgreSQL startup", deadline.Timeout);
                return;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException or AuthenticationException)
            {
                // The app went away, or did not trust the local CA.
                return;
            }

            if (startup is null)
            {
                return;
            }

            try
            {
                (server, registered) = await EstablishAsync(connection, generation, listener, db, startup, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!connection.ConnectionClosed.IsCancellationRequested)
            {
                // The handshake timeout ran out while the workload identity or the credential was
                // still being fetched (a slow issuer): a clean, transient error rather than a reset.
                Log.ClientRejected(_logger, listener.Name, "the login did not complete within the handshake timeout");
                await WriteErrorAsync(connection.Transport.Output, "57P03", "the proxy could not log in within " + deadline.Timeout.TotalSeconds + " s: the credential or the workload identity is still being fetched", CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException)
            {
                // The app went away mid-handshake.
                return;
            }

            if (server is not { } session)
            {
                return;
            }

            deadline.Stop();
            await SpliceAsync(connection, session.Stream).ConfigureAwait(false);
        }
        finally
        {
            if (appTls is not null)
            {
                connection.Transport = original;
                await appTls.DisposeAsync().ConfigureAwait(false);
            }

            // After the SslStream: the leaf cache disposes an evicted certificate only once no
            // connection still holds it.
            appLease?.Dispose();

            if (registered != 0)
            {
                _cancels.Unregister(registered);
            }

            if (server is { } s)
            {
                await s.Stream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Decide, fetch the credential, connect, log in, and hand the app the server's session
    /// parameters. Returns the server connection, or null when the app was sent an error.
    /// </summary>
    private async Task<(ServerConnection? Server, int CancelKey)> EstablishAsync(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, DatabaseListenerSettings db, PostgresStartupMessage startup, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var database = startup.Database ?? string.Empty;
        var destination = DatabaseDestination.For(PostgresWire.Scheme, db.Host, db.Port, database);
        using var activity = ProxyTelemetry.StartDatabaseConnection(listener.Name, connection.LocalEndPoint, PostgresWire.DatabaseSystem, destination, database);
        try
        {
            return await LogInAsync(connection, generation, listener, db, startup, destination, activity, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(started);
            activity?.SetTag(ProxyTelemetry.Tags.HandshakeDuration, elapsed.TotalMilliseconds);
            _metrics.AddedLatency(listener.Name, elapsed);
        }
    }

    private async Task<(ServerConnection? Server, int CancelKey)> LogInAsync(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, DatabaseListenerSettings db, PostgresStartupMessage startup, RequestDestination destination, Activity? activity, CancellationToken cancellationToken)
    {
        var output = connection.Transport.Output;
        var database = startup.Database ?? string.Empty;
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
                await WriteErrorAsync(output, SqlStateOf(refusal.Outcome), MessageOf(refusal, listener), CancellationToken.None).ConfigureAwait(false);
            }

            return default;
        }

        var grant = (AccessGrant)decision;
        // The pipeline grants a DatabaseLogin policy only with a credential that has a user name.
        var credential = grant.Credential!;
        var user = credential.Username!;
        activity?.SetTag(ProxyTelemetry.Tags.DatabaseUser, user);
        ServerConnection server = default;
        try
        {
            server = await PostgresServerConnector.ConnectAsync(db, cancellationToken).ConfigureAwait(false);
            var reader = new PostgresBackendReader(server.Stream);
            await server.Stream.WriteAsync(UpstreamStartup(startup, user, database), cancellationToken).ConfigureAwait(false);
            var cache = _saltedPasswords.GetOrAdd(listener.Name, static _ => new SaltedPasswordCache());
            var method = await PostgresAuthenticator.AuthenticateAsync(server.Stream, reader, user, credential.Secret, server.ServerCertificate, db.TlsMode, cache, cancellationToken).ConfigureAwait(false);
            activity?.SetTag(ProxyTelemetry.Tags.DatabaseAuthMethod, method);

            // The app asked for a newer protocol or for options: answer as a 3.0 server would.
            if (startup.MinorVersion > 0 || startup.ProtocolOptions.Count > 0)
            {
                await output.WriteAsync(PostgresWire.NegotiateProtocolVersion(0, startup.ProtocolOptions), cancellationToken).ConfigureAwait(false);
            }

            await output.WriteAsync(PostgresWire.AuthenticationOk(), cancellationToken).ConfigureAwait(false);
            var cancelKey = await RelayUntilReadyAsync(reader, output, listener.Name, cancellationToken).ConfigureAwait(false);
            grant.Complete(AccessOutcome.Connected);
            return (server, cancelKey);
        }
        catch (Exception ex)
        {
            // Every way out of the login, expected or not, closes the server connection here: the
            // caller only owns a connection this method returned.
            if (server.Stream is not null)
            {
                await server.Stream.DisposeAsync().ConfigureAwait(false);
            }

            AccessRefusal? failed = null;
            if (ex is PostgresProtocolException p)
            {
                if (p.Outcome is AccessOutcome.WeakExchangeRefused or AccessOutcome.ExcessiveWorkRefused)
                {
                    // A warning of its own: a server asking for a weakened exchange may be an
                    // impostor between the proxy and the database.
                    Log.AuthenticationRequestRefused(_logger, listener.Name, db.Host, db.Port, db.TlsMode.ToString(), p.Outcome.ToWireName(), p.Message);
                }

                var message = p.Outcome is AccessOutcome.LoginFailed or AccessOutcome.WeakExchangeRefused or AccessOutcome.ExcessiveWorkRefused
                    ? "the proxy's login to " + db.Host + ":" + db.Port + " as \"" + user + "\" with credential '" + db.CredentialName + "' failed: " + Truncate(p.Message)
                    : Truncate(p.Message);
                failed = grant.Refuse(p.Outcome, message);
                await WriteErrorAsync(output, p.SqlState, message, CancellationToken.None).ConfigureAwait(false);
            }
            else if (ex is not (OperationCanceledException or IOException))
            {
                Log.LoginError(_logger, listener.Name, db.Host, db.Port, ex.GetType().Name);
                failed = grant.Refuse(AccessOutcome.ProxyError, "the proxy failed while logging in to " + db.Host + ":" + db.Port + " (" + ex.GetType().Name + ")");
            }
            else if (!connection.ConnectionClosed.IsCancellationRequested)
            {
                failed = grant.Refuse(AccessOutcome.UpstreamFailed, ex is OperationCanceledException
                    ? "connecting and logging in to the database server " + db.Host + ":" + db.Port + " took longer than " + db.HandshakeTimeout.TotalSeconds + " s"
                    : "the connection to the database server " + db.Host + ":" + db.Port + " failed during login");
            }
            else
            {
                grant.Complete(AccessOutcome.ClientAborted, "the app closed the connection during the handshake");
            }

            if (failed is not null && ex is not PostgresProtocolException)
            {
                await WriteErrorAsync(output, "08006", failed.Reason, CancellationToken.None).ConfigureAwait(false);
            }

            return default;
        }
    }

    /// <summary>The SQLSTATE (PostgreSQL docs, Appendix A) for a refusal the pipeline decided.</summary>
    private static string SqlStateOf(AccessOutcome outcome) => outcome switch
    {
        // cannot_connect_now: transient, the app may retry.
        AccessOutcome.IdentityUnavailable or AccessOutcome.CredentialUnavailable or AccessOutcome.HandshakeTimeout => "57P03",
        // invalid_authorization_specification, as the server answers a pg_hba.conf reject.
        _ => "28000",
    };

    private static string MessageOf(AccessRefusal refusal, ListenerDefinition listener) => refusal.Outcome switch
    {
        AccessOutcome.Denied => "denied by policy: " + refusal.Reason,
        AccessOutcome.HandshakeTimeout => "the proxy could not log in within " + listener.Limits.HandshakeTimeout.TotalSeconds + " s: " + refusal.Reason,
        _ => refusal.Reason,
    };

    /// <summary>
    /// Relays ParameterStatus, notices and ReadyForQuery; replaces BackendKeyData with the proxy's own
    /// key data (registered for cancellation). Returns the registered process id (0 when the server sent none).
    /// </summary>
    private async Task<int> RelayUntilReadyAsync(PostgresBackendReader reader, PipeWriter output, string listener, CancellationToken cancellationToken)
    {
        var registered = 0;
        try
        {
            while (true)
            {
                var message = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                switch (message.Type)
                {
                    case PostgresWire.BackendKeyDataType when message.Payload.Length == 8 && registered == 0:
                        var serverPid = BinaryPrimitives.ReadInt32BigEndian(message.Payload);
                        var serverKey = BinaryPrimitives.ReadInt32BigEndian(message.Payload[4..]);
                        var (pid, key) = _cancels.Register(listener, serverPid, serverKey);
                        registered = pid;
                        await output.WriteAsync(PostgresWire.BackendKeyData(pid, key), cancellationToken).ConfigureAwait(false);
                        break;
                    case PostgresWire.BackendKeyDataType:
                        throw new PostgresProtocolException("08P01", "the database server sent unexpected BackendKeyData");
                    case PostgresWire.ErrorResponseType:
                        // A FATAL after authentication (database does not exist, too many connections):
                        // the server's own words are for the app and hold no credential.
                        var fields = PostgresWire.ReadFields(message.Payload);
                        throw new PostgresProtocolException(fields.GetValueOrDefault('C', "08006"), fields.GetValueOrDefault('M', "the database server refused the session"), AccessOutcome.SessionRefused);
                    case PostgresWire.ReadyForQueryType:
                        await output.WriteAsync(message.Frame, cancellationToken).ConfigureAwait(false);
                        return registered;
                    default:
                        await output.WriteAsync(message.Frame, cancellationToken).ConfigureAwait(false);
                        break;
                }
            }
        }
        catch
        {
            if (registered != 0)
            {
                _cancels.Unregister(registered);
            }

            throw;
        }
    }

    /// <summary>
    /// Bytes both ways until either side closes. No message is parsed: after login the proxy has
    /// nothing more to decide, and parsing would only cost throughput.
    /// </summary>
    private static async Task SpliceAsync(ConnectionContext connection, Stream server)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        var toServer = connection.Transport.Input.CopyToAsync(server, stop.Token);
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
    }

    /// <summary>
    /// Reads startup-phase packets: answers SSLRequest with TLS from the local CA when the listener
    /// accepts TLS (else 'N', the app's side being loopback) and GSSENCRequest with 'N', serves a
    /// CancelRequest, and returns the StartupMessage. Null when the connection was a cancel or closed.
    /// </summary>
    private async Task<PostgresStartupMessage?> ReadStartupAsync(ConnectionContext connection, string listener, DatabaseListenerSettings db, Action<SslStream> onTls, Action<LeafCertificateLease> onLease, CancellationToken cancellationToken)
    {
        var sslAnswered = false;
        var gssAnswered = false;
        while (true)
        {
            var input = connection.Transport.Input;
            var output = connection.Transport.Output;
            var read = await input.ReadAtLeastAsync(4, cancellationToken).ConfigureAwait(false);
            if (read.Buffer.Length < 4)
            {
                input.AdvanceTo(read.Buffer.End);
                if (read.Buffer.Length == 0)
                {
                    return null;
                }

                throw new PostgresProtocolException("08P01", "incomplete startup packet");
            }

            var length = ReadInt32(read.Buffer);
            if (length is < 8 or > PostgresWire.MaxStartupPacketLength)
            {
                input.AdvanceTo(read.Buffer.Start);
                throw new PostgresProtocolException("08P01", "invalid startup packet length " + length + " (at most " + PostgresWire.MaxStartupPacketLength + " bytes)");
            }

            input.AdvanceTo(read.Buffer.Start);
            read = await input.ReadAtLeastAsync(length, cancellationToken).ConfigureAwait(false);
            if (read.Buffer.Length < length)
            {
                input.AdvanceTo(read.Buffer.End);
                throw new PostgresProtocolException("08P01", "incomplete startup packet");
            }

            var packet = read.Buffer.Slice(0, length);
            var code = ReadInt32(packet.Slice(4));
            var payload = packet.Slice(8);
            switch (code)
            {
                case PostgresWire.SslRequestCode when length == 8 && !sslAnswered:
                    // Bytes sent after the SSLRequest but before the handshake would later pass for
                    // encrypted ones (PostgreSQL's own CVE-2021-23214): refuse them.
                    if (read.Buffer.Length > length)
                    {
                        input.AdvanceTo(packet.End);
                        throw new PostgresProtocolException("08P01", "received unencrypted data after the SSL request");
                    }

                    input.AdvanceTo(packet.End);
                    sslAnswered = true;
                    if (db.AcceptTls && _state.Leaves is { } leaves)
                    {
                        await output.WriteAsync(new[] { (byte)'S' }, cancellationToken).ConfigureAwait(false);
                        await DatabaseAppTls.AcceptAsync(connection, db, leaves, onTls, onLease, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await output.WriteAsync(new[] { (byte)'N' }, cancellationToken).ConfigureAwait(false);
                    }

                    continue;

                case PostgresWire.GssEncRequestCode when length == 8 && !gssAnswered:
                    input.AdvanceTo(packet.End);
                    gssAnswered = true;
                    await output.WriteAsync(new[] { (byte)'N' }, cancellationToken).ConfigureAwait(false);
                    continue;

                case PostgresWire.CancelRequestCode when length == 16:
                    var pid = ReadInt32(payload);
                    var key = ReadInt32(payload.Slice(4));
                    input.AdvanceTo(packet.End);
                    await CancelAsync(listener, db, pid, key, cancellationToken).ConfigureAwait(false);
                    return null;

                case var version when version >> 16 == 3:
                    var startup = PostgresStartupMessage.TryParse(version, payload, out var error);
                    input.AdvanceTo(packet.End);
                    if (startup is null)
                    {
                        throw new PostgresProtocolException("08P01", "invalid startup packet: " + error);
                    }

                    if (startup["replication"] is { } replication && !string.Equals(replication, "false", StringComparison.OrdinalIgnoreCase) && replication != "0")
                    {
                        throw new PostgresProtocolException("0A000", "replication connections are not proxied");
                    }

                    if (startup.Database is null)
                    {
                        throw new PostgresProtocolException("08P01", "the startup message names no database and no user");
                    }

                    return startup;

                default:
                    input.AdvanceTo(packet.End);
                    throw new PostgresProtocolException("0A000", "unsupported frontend protocol " + (code >> 16) + "." + (code & 0xFFFF) + ": the proxy speaks 3.0");
            }
        }
    }

    /// <summary>
    /// A CancelRequest carries no login: it is honoured only for key data this proxy issued, and
    /// sent to the server with the server's own key. The app gets no answer either way, as from a server.
    /// </summary>
    private async Task CancelAsync(string listener, DatabaseListenerSettings db, int pid, int key, CancellationToken cancellationToken)
    {
        if (!_cancels.TryResolve(listener, pid, key, out var serverPid, out var serverKey))
        {
            Log.CancelIgnored(_logger, listener);
            return;
        }

        try
        {
            var server = await PostgresServerConnector.ConnectAsync(db, cancellationToken).ConfigureAwait(false);
            await using (server.Stream.ConfigureAwait(false))
            {
                var payload = new byte[8];
                BinaryPrimitives.WriteInt32BigEndian(payload, serverPid);
                BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(4), serverKey);
                await server.Stream.WriteAsync(PostgresWire.StartupPacket(PostgresWire.CancelRequestCode, payload), cancellationToken).ConfigureAwait(false);
                await server.Stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                // The server closes the connection once it has read the request.
                var sink = new byte[1];
                _ = await server.Stream.ReadAsync(sink, cancellationToken).ConfigureAwait(false);
            }

            Log.CancelForwarded(_logger, listener, db.Host, db.Port);
        }
        catch (Exception ex) when (ex is PostgresProtocolException or IOException or OperationCanceledException)
        {
            Log.CancelFailed(_logger, listener, ex.Message);
        }
    }

    /// <summary>The app's startup parameters, with the credential's user and the resolved database.</summary>
    private static byte[] UpstreamStartup(PostgresStartupMessage startup, string user, string database)
    {
        var payload = new ArrayBufferWriter<byte>();
        PostgresWire.WriteCString(payload, "user");
        PostgresWire.WriteCString(payload, user);
        PostgresWire.WriteCString(payload, "database");
        PostgresWire.WriteCString(payload, database);
        foreach (var (name, value) in startup.Parameters)
        {
            if (name is not ("user" or "database"))
            {
                PostgresWire.WriteCString(payload, name);
                PostgresWire.WriteCString(payload, value);
            }
        }

        payload.Write<byte>([0]);
        return PostgresWire.StartupPacket(PostgresWire.ProtocolVersion3, payload.WrittenSpan);
    }

    private static int ReadInt32(ReadOnlySequence<byte> buffer)
    {
        Span<byte> word = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(word);
        return BinaryPrimitives.ReadInt32BigEndian(word);
    }

    private static string Truncate(string message) => message.Length <= 500 ? message : message[..500] + "...";

    private static async Task WriteErrorAsync(PipeWriter output, string sqlState, string message, CancellationToken cancellationToken)
    {
        try
        {
            await output.WriteAsync(PostgresWire.ErrorResponse("FATAL", sqlState, message), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionResetException or InvalidOperationException)
        {
            // The app is gone; there is nobody to tell.
        }
    }

    private static partial class Log
    {
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
