using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Connections;
using SecretlessProxy.Attestation;
using SecretlessProxy.Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// A MySql listener's connections, below HTTP. Toward the app the proxy is a MySQL server that
/// greets first and accepts the login without a password; toward the database it is a client that
/// logs in with the listener's credential. Policy decides once per connection (caller, identity,
/// the schema the app names), the login happens, the server's OK reaches the app, and from then on
/// bytes are spliced, the app's commands watched only for COM_CHANGE_USER and KILL
/// (<see cref="MySqlCommandFilter"/>).
/// </summary>
/// <remarks>
/// The greeting goes out before the server is contacted (nothing reaches the server before policy
/// allows it), so its version, collation and capabilities are those the proxy last saw from this
/// listener's server (before the first login: a conservative default), and the capabilities the
/// app picks are checked against the real server's before the login goes upstream.
/// </remarks>
internal sealed partial class MySqlConnectionHandler
{
    /// <summary>The version the greeting names before the proxy has seen this listener's server: a MySQL 8 the clients treat as modern.</summary>
    private const string DefaultServerVersion = "8.0.0-secretless-proxy";

    private readonly ProxyState _state;
    private readonly MySqlThreadRegistry _threads;
    private readonly ProxyMetrics _metrics;
    private readonly AccessPipeline _pipeline;
    private readonly TimeProvider _time;
    private readonly ConnectionRefusals _refusals;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, ServerProfile> _profiles = new(StringComparer.Ordinal);

    public MySqlConnectionHandler(ProxyState state, MySqlThreadRegistry threads, ProxyMetrics metrics, AccessPipeline pipeline, ConnectionRefusals refusals, TimeProvider time, ILogger<MySqlConnectionHandler> logger)
    {
        _state = state;
        _threads = threads;
        _metrics = metrics;
        _pipeline = pipeline;
        _refusals = refusals;
        _time = time;
        _logger = logger;
    }

    public async Task OnConnectionAsync(ConnectionContext connection, string listenerName)
    {
        var generation = _state.Current;
        if (!generation.Snapshot.Listeners.TryGetValue(listenerName, out var listener) || listener.Settings is not MySqlListenerSettings settings)
        {
            // Removed or re-purposed by a reload while the socket still accepts: fail closed.
            await WriteAsync(connection.Transport.Output, MySqlWire.Error(0, MySqlWire.ErUnknownError, "HY000", "listener '" + listenerName + "' is not configured"), CancellationToken.None).ConfigureAwait(false);
            return;
        }

        var db = settings.Database;
        using var deadline = new HandshakeDeadline(listener.Limits.HandshakeTimeout, _time, connection.ConnectionClosed);
        var original = connection.Transport;
        SslStream? appTls = null;
        LeafCertificateLease? appLease = null;
        Stream? server = null;
        var proxyId = _threads.Allocate();
        var registered = false;
        try
        {
            var profile = _profiles.GetValueOrDefault(ProfileKey(listener.Name, db)) ?? ServerProfile.Default;
            var offered = (MySqlCapabilities.Offered & (profile.Capabilities | MySqlCapabilities.ProxyOwned)) | MySqlCapabilities.LongPassword;
            if (db.AcceptTls && _state.Leaves is not null)
            {
                offered |= MySqlCapabilities.Ssl;
            }

            var scramble = NewScramble();
            MySqlHandshakeResponse? response;
            byte sequence;
            byte received = 1;
            try
            {
                await WriteAsync(connection.Transport.Output, MySqlWire.Greeting(profile.Version, proxyId, scramble, offered, profile.Collation, MySqlWire.StatusAutocommit), deadline.Token).ConfigureAwait(false);
                (response, sequence) = await ReadLoginAsync(connection, db, offered, tls => appTls = tls, lease => appLease = lease, seq => received = seq, deadline.Token).ConfigureAwait(false);
            }
            catch (MySqlProtocolException ex)
            {
                Log.ClientRejected(_logger, listener.Name, ex.Message);
                await WriteAsync(connection.Transport.Output, MySqlWire.Error((byte)(received + 1), ex.Code, ex.SqlState, ex.Message), CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (deadline.Expired && !connection.ConnectionClosed.IsCancellationRequested)
            {
                // The app connected and did not answer the greeting (or finish its TLS) in time:
                // closed without an answer, as the server does (connect_timeout).
                _refusals.HandshakeTimedOut(listener.Name, "the MySQL handshake response", deadline.Timeout);
                return;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException or AuthenticationException or InvalidOperationException)
            {
                // The app went away, or did not trust the local CA.
                return;
            }

            if (response is null)
            {
                return;
            }

            var reply = (byte)(sequence + 1);
            try
            {
                (server, var serverThread) = await EstablishAsync(connection, generation, listener, settings, response, offered, reply, deadline.Token).ConfigureAwait(false);
                if (server is null)
                {
                    return;
                }

                _threads.Register(proxyId, listener.Name, serverThread);
                registered = true;
            }
            catch (OperationCanceledException) when (!connection.ConnectionClosed.IsCancellationRequested)
            {
                // The handshake timeout ran out while the workload identity or the credential was
                // still being fetched (a slow issuer): a clean, transient error rather than a reset.
                Log.ClientRejected(_logger, listener.Name, "the login did not complete within the handshake timeout");
                await WriteAsync(connection.Transport.Output, MySqlWire.Error(reply, MySqlWire.ErUnknownError, "HY000", "the proxy could not log in within " + deadline.Timeout.TotalSeconds + " s: the credential or the workload identity is still being fetched"), CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException)
            {
                return;
            }

            deadline.Stop();
            await SpliceAsync(connection, server, listener.Name).ConfigureAwait(false);
        }
        finally
        {
            if (registered)
            {
                _threads.Unregister(proxyId);
            }

            if (appTls is not null)
            {
                connection.Transport = original;
                await appTls.DisposeAsync().ConfigureAwait(false);
            }

            appLease?.Dispose();
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Decide, fetch the credential, connect, log in, and hand the app the server's OK. Null when the app was sent an error.</summary>
    private async Task<(Stream? Server, uint ServerThread)> EstablishAsync(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, MySqlListenerSettings settings, MySqlHandshakeResponse response, MySqlCapabilities offered, byte reply, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var db = settings.Database;
        var schema = response.Schema ?? string.Empty;
        var destination = DatabaseDestination.For(MySqlWire.Scheme, db.Host, db.Port, schema);
        var system = _profiles.TryGetValue(ProfileKey(listener.Name, db), out var known) && known.IsMariaDb ? "mariadb" : "mysql";
        using var activity = ProxyTelemetry.StartDatabaseConnection(listener.Name, connection.LocalEndPoint, system, destination, schema);
        try
        {
            return await LogInAsync(connection, generation, listener, settings, response, offered, reply, destination, activity, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(started);
            activity?.SetTag(ProxyTelemetry.Tags.HandshakeDuration, elapsed.TotalMilliseconds);
            _metrics.AddedLatency(listener.Name, elapsed);
        }
    }

    private async Task<(Stream? Server, uint ServerThread)> LogInAsync(ConnectionContext connection, ProxyGeneration generation, ListenerDefinition listener, MySqlListenerSettings settings, MySqlHandshakeResponse response, MySqlCapabilities offered, byte reply, RequestDestination destination, Activity? activity, CancellationToken cancellationToken)
    {
        var output = connection.Transport.Output;
        var db = settings.Database;
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
                var (code, state, message) = ErrorOf(refusal, listener);
                await WriteAsync(output, MySqlWire.Error(reply, code, state, message), CancellationToken.None).ConfigureAwait(false);
            }

            return default;
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
            var reader = new MySqlPacketReader(server);
            var (greetingSequence, greetingPayload) = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (greetingPayload.Length > 0 && greetingPayload[0] == MySqlWire.ErrHeader)
            {
                // Too many connections, host blocked: the server's own words, before any login, so
                // never the credential's fault.
                var refused = MySqlAuthenticator.ServerError(greetingPayload);
                throw new MySqlProtocolException(refused.Code, refused.SqlState, refused.Message, AccessOutcome.SessionRefused);
            }

            var greeting = MySqlServerGreeting.TryParse(greetingPayload, out var greetingError)
                ?? throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", greetingError, AccessOutcome.UpstreamFailed);
            activity?.SetTag(ProxyTelemetry.Tags.DatabaseSystem, greeting.IsMariaDb ? "mariadb" : "mysql");
            _profiles[ProfileKey(listener.Name, db)] = new ServerProfile(greeting.ServerVersion, greeting.Capabilities, greeting.Collation, greeting.IsMariaDb);

            // What the app chose from the proxy's offer must be what the server speaks: the bytes
            // after the login (EOF packets, session tracking, multi-results) depend on it.
            var chosen = response.Capabilities & offered & ~MySqlCapabilities.ProxyOwned;
            var missing = chosen & ~greeting.Capabilities;
            if (missing != MySqlCapabilities.None)
            {
                throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server does not support capabilities the app chose (" + missing + "); the proxy's next greeting offers only what it supports, reconnect", AccessOutcome.UpstreamFailed);
            }

            var upstream = chosen | MySqlCapabilities.LongPassword | MySqlCapabilities.Protocol41 | MySqlCapabilities.SecureConnection | MySqlCapabilities.PluginAuth
                | (greeting.Capabilities & (MySqlCapabilities.PluginAuthLenencClientData | MySqlCapabilities.ConnectAttrs))
                | (response.Schema is not null && greeting.Capabilities.HasFlag(MySqlCapabilities.ConnectWithDb) ? MySqlCapabilities.ConnectWithDb : MySqlCapabilities.None);
            var next = (byte)(greetingSequence + 1);
            var tls = db.TlsMode != DatabaseTlsMode.Disable;
            if (tls)
            {
                if (!greeting.Capabilities.HasFlag(MySqlCapabilities.Ssl))
                {
                    throw new DatabaseConnectException(AccessOutcome.UpstreamTlsFailed, "the database server does not offer TLS, and the listener requires it (Tls Mode " + db.TlsMode + ")");
                }

                upstream |= MySqlCapabilities.Ssl;
                await server.WriteAsync(MySqlHandshakeResponse.SslRequest(next++, upstream, response.MaxPacketSize, response.Collation), cancellationToken).ConfigureAwait(false);
                await server.FlushAsync(cancellationToken).ConfigureAwait(false);
                server = await DatabaseServerConnector.AuthenticateTlsAsync(server, db, cancellationToken).ConfigureAwait(false);
                reader = new MySqlPacketReader(server);
            }

            var options = new MySqlLoginOptions(tls, tls && db.TlsMode == DatabaseTlsMode.VerifyFull, settings.ServerPublicKeyPem, settings.AllowPublicKeyRetrieval);
            var (method, ok) = await MySqlAuthenticator.AuthenticateAsync(
                server,
                reader,
                greeting,
                next,
                (plugin, auth, seq) => MySqlHandshakeResponse.Upstream(seq, upstream, response.MaxPacketSize, response.Collation, user, auth, response.Schema, plugin, response.ConnectionAttributes),
                credential.Secret,
                options,
                cancellationToken).ConfigureAwait(false);
            activity?.SetTag(ProxyTelemetry.Tags.DatabaseAuthMethod, method);

            // The server's OK (status flags, session state) is the app's, renumbered into the app's exchange.
            await WriteAsync(output, MySqlWire.Packet(reply, ok), cancellationToken).ConfigureAwait(false);
            grant.Complete(AccessOutcome.Connected);
            return (server, greeting.ConnectionId);
        }
        catch (Exception ex)
        {
            // Every way out of the login closes the server connection here: the caller only owns a
            // connection this method returned.
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }

            if (ex is MySqlProtocolException p)
            {
                if (p.Outcome is AccessOutcome.WeakExchangeRefused)
                {
                    Log.AuthenticationRequestRefused(_logger, listener.Name, db.Host, db.Port, db.TlsMode.ToString(), p.Outcome.ToWireName(), p.Message);
                }

                var message = p.Outcome is AccessOutcome.LoginFailed or AccessOutcome.WeakExchangeRefused
                    ? "the proxy's login to " + db.Host + ":" + db.Port + " as '" + user + "' with credential '" + db.CredentialName + "' failed: " + Truncate(p.Message)
                    : Truncate(p.Message);
                grant.Refuse(p.Outcome, message);
                await WriteAsync(output, MySqlWire.Error(reply, p.Code, p.SqlState, message), CancellationToken.None).ConfigureAwait(false);
            }
            else if (ex is DatabaseConnectException c)
            {
                var failed = grant.Refuse(c.Outcome, c.Message);
                await WriteAsync(output, MySqlWire.Error(reply, MySqlWire.ErConnectToForeignDataSource, "08S01", failed.Reason), CancellationToken.None).ConfigureAwait(false);
            }
            else if (ex is not (OperationCanceledException or IOException))
            {
                Log.LoginError(_logger, listener.Name, db.Host, db.Port, ex.GetType().Name);
                var failed = grant.Refuse(AccessOutcome.ProxyError, "the proxy failed while logging in to " + db.Host + ":" + db.Port + " (" + ex.GetType().Name + ")");
                await WriteAsync(output, MySqlWire.Error(reply, MySqlWire.ErUnknownError, "HY000", failed.Reason), CancellationToken.None).ConfigureAwait(false);
            }
            else if (!connection.ConnectionClosed.IsCancellationRequested)
            {
                var failed = grant.Refuse(AccessOutcome.UpstreamFailed, ex is OperationCanceledException
                    ? "connecting and logging in to the database server " + db.Host + ":" + db.Port + " took longer than " + db.HandshakeTimeout.TotalSeconds + " s"
                    : "the connection to the database server " + db.Host + ":" + db.Port + " failed during login");
                await WriteAsync(output, MySqlWire.Error(reply, MySqlWire.ErNetReadError, "08S01", failed.Reason), CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                grant.Complete(AccessOutcome.ClientAborted, "the app closed the connection during the handshake");
            }

            return default;
        }
    }

    /// <summary>The error number, SQLSTATE and message for a refusal the pipeline decided.</summary>
    private static (ushort Code, string SqlState, string Message) ErrorOf(AccessRefusal refusal, ListenerDefinition listener) => refusal.Outcome switch
    {
        // ER_HOST_NOT_PRIVILEGED: what a server answers a client it does not let in at all.
        AccessOutcome.Denied => (MySqlWire.ErHostNotPrivileged, "HY000", "denied by policy: " + refusal.Reason),
        // Transient: the app may retry.
        AccessOutcome.HandshakeTimeout => (MySqlWire.ErUnknownError, "HY000", "the proxy could not log in within " + listener.Limits.HandshakeTimeout.TotalSeconds + " s: " + refusal.Reason),
        AccessOutcome.IdentityUnavailable or AccessOutcome.CredentialUnavailable => (MySqlWire.ErUnknownError, "HY000", refusal.Reason),
        _ => (MySqlWire.ErHostNotPrivileged, "HY000", refusal.Reason),
    };

    /// <summary>
    /// Reads the app's answer to the greeting: an SSLRequest first (TLS from the local CA when the
    /// listener accepts TLS), then the HandshakeResponse41. Returns it with its sequence id; null
    /// when the app closed without one.
    /// </summary>
    private async Task<(MySqlHandshakeResponse? Response, byte Sequence)> ReadLoginAsync(ConnectionContext connection, DatabaseListenerSettings db, MySqlCapabilities offered, Action<SslStream> onTls, Action<LeafCertificateLease> onLease, Action<byte> onSequence, CancellationToken cancellationToken)
    {
        var packet = await ReadAppPacketAsync(connection.Transport.Input, cancellationToken).ConfigureAwait(false);
        if (packet is not { } first)
        {
            return (null, 0);
        }

        var (sequence, payload) = first;
        onSequence(sequence);
        if (MySqlHandshakeResponse.IsSslRequest(payload))
        {
            if (!offered.HasFlag(MySqlCapabilities.Ssl) || _state.Leaves is not { } leaves)
            {
                throw new MySqlProtocolException(MySqlWire.ErHandshake, "08S01", "the app asked for TLS, which this listener does not offer (AcceptTls)");
            }

            // No answer to the SSL request: the client starts TLS right after it (libmariadb sends its
            // ClientHello in the same flight), so whatever follows is read as TLS records, never as
            // plaintext (unlike PostgreSQL's 'S', there is no gap for injected bytes to hide in).
            await DatabaseAppTls.AcceptAsync(connection, db, leaves, onTls, onLease, cancellationToken).ConfigureAwait(false);
            packet = await ReadAppPacketAsync(connection.Transport.Input, cancellationToken).ConfigureAwait(false);
            if (packet is not { } second)
            {
                return (null, 0);
            }

            (sequence, payload) = second;
            onSequence(sequence);
        }

        var response = MySqlHandshakeResponse.TryParse(payload, out var error)
            ?? throw new MySqlProtocolException(MySqlWire.ErHandshake, "08S01", "Bad handshake: " + error);
        return (response, sequence);
    }

    /// <summary>One packet from the app during the login; null when it closed first.</summary>
    private static async Task<(byte Sequence, byte[] Payload)?> ReadAppPacketAsync(PipeReader input, CancellationToken cancellationToken)
    {
        var read = await input.ReadAtLeastAsync(MySqlWire.HeaderLength, cancellationToken).ConfigureAwait(false);
        if (read.Buffer.Length < MySqlWire.HeaderLength)
        {
            input.AdvanceTo(read.Buffer.End);
            if (read.Buffer.Length == 0)
            {
                return null;
            }

            throw new MySqlProtocolException(MySqlWire.ErHandshake, "08S01", "Bad handshake: incomplete packet");
        }

        Span<byte> header = stackalloc byte[MySqlWire.HeaderLength];
        read.Buffer.Slice(0, MySqlWire.HeaderLength).CopyTo(header);
        var length = MySqlWire.ReadLength(header);
        var sequence = header[3];
        input.AdvanceTo(read.Buffer.Start);
        if (length > MySqlWire.MaxHandshakePacketLength)
        {
            throw new MySqlProtocolException(MySqlWire.ErHandshake, "08S01", "Bad handshake: a " + length + "-byte login packet");
        }

        read = await input.ReadAtLeastAsync(MySqlWire.HeaderLength + length, cancellationToken).ConfigureAwait(false);
        if (read.Buffer.Length < MySqlWire.HeaderLength + length)
        {
            input.AdvanceTo(read.Buffer.End);
            throw new MySqlProtocolException(MySqlWire.ErHandshake, "08S01", "Bad handshake: incomplete packet");
        }

        var payload = read.Buffer.Slice(MySqlWire.HeaderLength, length).ToArray();
        input.AdvanceTo(read.Buffer.GetPosition(MySqlWire.HeaderLength + length));
        return (sequence, payload);
    }

    /// <summary>Bytes both ways until either side closes; the app's commands pass through <see cref="MySqlCommandFilter"/>.</summary>
    private async Task SpliceAsync(ConnectionContext connection, Stream server, string listener)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        var toServer = MySqlCommandFilter.CopyAsync(connection.Transport.Input, server, listener, _threads, () => Log.ChangeUserRefused(_logger, listener), stop.Token);
        var toApp = server.CopyToAsync(connection.Transport.Output, stop.Token);
        await Task.WhenAny(toServer, toApp).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        await server.DisposeAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(toServer, toApp).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException or ConnectionResetException or MySqlProtocolException)
        {
            // Either side closing (or the cancel above) ends both copies; that is the normal end.
        }
    }

    /// <summary>20 random printable bytes: the greeting's nonce (it ends in a NUL on the wire, so it has none).</summary>
    private static byte[] NewScramble()
    {
        var scramble = RandomNumberGenerator.GetBytes(20);
        for (var i = 0; i < scramble.Length; i++)
        {
            scramble[i] = (byte)(0x21 + (scramble[i] % 94));
        }

        return scramble;
    }

    /// <summary>A reload may point a listener at another server: the profile is that server's.</summary>
    private static string ProfileKey(string listener, DatabaseListenerSettings db) => listener + "|" + db.Host + ":" + db.Port;

    private static string Truncate(string message) => message.Length <= 500 ? message : message[..500] + "...";

    private static async Task WriteAsync(PipeWriter output, byte[] packet, CancellationToken cancellationToken)
    {
        try
        {
            await output.WriteAsync(packet, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or InvalidOperationException || (ex is OperationCanceledException && !cancellationToken.CanBeCanceled))
        {
            // The app is gone; there is nobody to tell. (An error written with no token of ours can
            // still be cancelled by the transport closing; a cancelled handshake token propagates.)
        }
    }

    /// <summary>What the proxy last saw of a listener's server, for the next greeting.</summary>
    private sealed record ServerProfile(string Version, MySqlCapabilities Capabilities, byte Collation, bool IsMariaDb)
    {
        public static ServerProfile Default { get; } = new(DefaultServerVersion, MySqlCapabilities.Offered, MySqlWire.DefaultCollation, false);
    }

    private static partial class Log
    {
        // Debug: any local process can send these for free, so they must not flood the log.
        [LoggerMessage(EventIds.DatabaseClientRejected, LogLevel.Debug, "Rejected a client on listener {Listener}: {Reason}")]
        public static partial void ClientRejected(ILogger logger, string listener, string reason);

        [LoggerMessage(EventIds.DatabaseClientRejected, LogLevel.Debug, "Refused a COM_CHANGE_USER on listener {Listener}: the connection stays logged in as the credential's user")]
        public static partial void ChangeUserRefused(ILogger logger, string listener);

        [LoggerMessage(EventIds.DatabaseWeakAuthenticationRefused, LogLevel.Warning, "Refused the authentication the database server {Host}:{Port} asked for on listener {Listener} (Tls Mode {TlsMode}, {Outcome}): {Reason}")]
        public static partial void AuthenticationRequestRefused(ILogger logger, string listener, string host, int port, string tlsMode, string outcome, string reason);

        [LoggerMessage(EventIds.DatabaseLoginError, LogLevel.Warning, "Logging in on listener {Listener} to {Host}:{Port} failed unexpectedly: {Error}")]
        public static partial void LoginError(ILogger logger, string listener, string host, int port, string error);
    }
}
