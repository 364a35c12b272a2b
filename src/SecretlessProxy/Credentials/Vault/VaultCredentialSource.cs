using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using SecretlessProxy.Core;
using SecretlessProxy.Identity;
using SecretlessProxy.Telemetry;


namespace SecretlessProxy.Credentials;

/// <summary>
/// Reads a credential from HashiCorp Vault, logged in with the workload's identity token (the
/// <c>jwt</c> or <c>kubernetes</c> auth method), so no Vault token is ever configured.
/// <list type="bullet">
/// <item>KV v2 (<c>SecretPath</c> + <c>Field</c>): KV secrets do not expire, so the value is re-read
/// every <c>DefaultLifetime</c> to pick up rotations made in Vault.</item>
/// <item>Dynamic secrets (<c>DynamicPath</c>): user name and password come from one answer (two reads
/// would give two different users). Before re-issuing, a renewable lease is renewed and the same
/// user kept; when Vault grants less than asked (its max TTL is near), new credentials are issued.</item>
/// </list>
/// A lease that a re-issue supersedes is left to run out at its TTL rather than revoked at once:
/// requests (and, for databases, pooled connections) that took the old user moments ago would be
/// cut off mid-flight, and re-issue happens at <c>RefreshAt</c> of the lifetime, so the old lease
/// has little time left anyway. When the proxy stops or a reload drops the credential,
/// <see cref="ReleaseAsync"/> revokes every lease this source still holds. The Vault role's policy
/// needs <c>update</c> on <c>sys/leases/renew</c> and <c>sys/leases/revoke</c> for that.
/// </summary>
internal sealed partial class VaultCredentialSource : ICredentialSource
{
    // Local until the lead adds them to EventIds (range 160-179).
    private const int LoggedInEvent = EventIds.VaultLoggedIn;
    private const int LoginAgainEvent = EventIds.VaultLoginAgain;
    private const int LeaseIssuedEvent = EventIds.VaultLeaseIssued;
    private const int LeaseRenewedEvent = EventIds.VaultLeaseRenewed;
    private const int LeaseRenewalShortEvent = EventIds.VaultLeaseRenewalShort;
    private const int LeaseRenewalFailedEvent = EventIds.VaultLeaseRenewalFailed;
    private const int LeaseRevokedEvent = EventIds.VaultLeaseRevoked;
    private const int LeaseRevokeFailedEvent = EventIds.VaultLeaseRevokeFailed;

    private readonly VaultSettings _settings;
    private readonly VaultClient _client;
    private readonly TimeProvider _time;
    private readonly WorkloadIdentityAccessor _identity;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _retry;
    private readonly Lock _gate = new();

    private VaultToken? _token;
    private Lease? _lease;
    private volatile bool _released;
    private readonly List<Lease> _superseded = [];

    public VaultCredentialSource(VaultSettings settings, HttpMessageInvoker http, TimeProvider time, WorkloadIdentityAccessor identity, ILogger? logger = null)
    {
        _settings = settings;
        _client = new VaultClient(settings.Address, http, settings.CaFile, settings.Timeout, settings.Endpoint);
        _time = time;
        _identity = identity;
        _logger = logger ?? NullLogger.Instance;

        _retry = FetchRetry.Create(time, settings.RetryAttempts, settings.RetryDelay);
    }

    public string Kind => "Vault";

    public CredentialSourceDescription Describe() => _settings.Dynamic
        ? new(
            "Vault " + CredentialSourceDescription.Authority(_settings.Address) + ", path " + _settings.ConfiguredPath,
            "the lease is renewed, and new credentials issued when Vault grants less than asked",
            "the lease TTL as Vault grants it",
            "revokes the current lease at Vault (sys/leases/revoke) and drops the cached value; the next request gets a new user")
        : new(
            "Vault " + CredentialSourceDescription.Authority(_settings.Address) + ", path " + _settings.ConfiguredPath + (_settings.Field is null ? string.Empty : " field " + _settings.Field),
            "re-read every DefaultLifetime, picking up rotations made in Vault",
            "DefaultLifetime " + _settings.ReadInterval.ToString("c", System.Globalization.CultureInfo.InvariantCulture) + " (KV values do not expire)",
            "drops the cached value; the KV value stays valid until it is rotated in Vault");

    public async Task<Credential> FetchAsync(CancellationToken cancellationToken) =>
        await _retry.ExecuteAsync(static (self, ct) => new ValueTask<Credential>(self.FetchOnceAsync(ct)), this, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Revokes the current lease and every superseded one still alive; never throws. Afterwards the
    /// source issues nothing more (a fetch still running revokes what it gets at once).
    /// </summary>
    public async ValueTask ReleaseAsync(CancellationToken cancellationToken)
    {
        List<Lease> leases;
        VaultToken? token;
        lock (_gate)
        {
            _released = true;
            leases = [.. _superseded];
            if (_lease is not null)
            {
                leases.Add(_lease);
            }

            _lease = null;
            _superseded.Clear();
            token = _token;
        }

        await RevokeLeasesAsync(leases, token, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>An operator revoked the credential: the current lease is revoked at Vault and never renewed, so the next fetch issues a new user.</summary>
    public async ValueTask OnRevokedAsync(CancellationToken cancellationToken)
    {
        Lease? lease;
        VaultToken? token;
        lock (_gate)
        {
            lease = _lease;
            _lease = null;
            token = _token;
        }

        if (lease is not null)
        {
            await RevokeLeasesAsync([lease], token, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task RevokeLeasesAsync(List<Lease> leases, VaultToken? token, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        foreach (var lease in leases)
        {
            // A lease whose TTL ran out, or whose issuing token expired (Vault revokes a token's
            // leases with it), is gone already.
            if (lease.LeaseId.Length == 0 || lease.ExpiresAt <= now)
            {
                continue;
            }

            try
            {
                if (token is null || !token.UsableAt(now))
                {
                    token = await LoginAsync(cancellationToken).ConfigureAwait(false);
                }

                var reply = await _client.SendAsync(HttpMethod.Put, "sys/leases/revoke", w => w.WriteString("lease_id", lease.LeaseId), token.Value, "revoking a lease", cancellationToken).ConfigureAwait(false);
                if (reply.IsSuccess)
                {
                    Log.LeaseRevoked(_logger, lease.LeaseId, _settings.ConfiguredPath);
                }
                else
                {
                    var hint = reply.Status == 403 ? "the role's policy needs update on sys/leases/revoke" : null;
                    Log.LeaseRevokeFailed(_logger, lease.LeaseId, _client.Failure(reply.Status, "revoking the lease", hint).Message, lease.ExpiresAt);
                }
            }
            catch (CredentialFetchException ex)
            {
                Log.LeaseRevokeFailed(_logger, lease.LeaseId, ex.Message, lease.ExpiresAt);
            }
            catch (OperationCanceledException)
            {
                Log.LeaseRevokeFailed(_logger, lease.LeaseId, "gave up: the release took too long", lease.ExpiresAt);
                return;
            }
        }
    }

    private async Task<Credential> FetchOnceAsync(CancellationToken cancellationToken)
    {
        if (_released)
        {
            throw new CredentialFetchException("the credential was released (the proxy is stopping or a reload dropped it)", isTransient: false);
        }

        if (!_settings.Dynamic)
        {
            return await ReadKvAsync(cancellationToken).ConfigureAwait(false);
        }

        Lease? current;
        lock (_gate)
        {
            current = _lease;
        }

        if (current is { Renewable: true } && current.ExpiresAt > _time.GetUtcNow())
        {
            var renewed = await TryRenewAsync(current, cancellationToken).ConfigureAwait(false);
            if (renewed is not null)
            {
                return renewed;
            }
        }

        return await IssueAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<Credential> ReadKvAsync(CancellationToken cancellationToken)
    {
        var username = await UsernameResolver.ResolveAsync(_settings.Username, _settings.UsernameFile, cancellationToken).ConfigureAwait(false);
        var action = "reading " + _settings.ConfiguredPath;
        var (reply, _) = await SendWithTokenAsync(HttpMethod.Get, _settings.ReadPath, null, action, forIssue: false, cancellationToken).ConfigureAwait(false);
        if (!reply.IsSuccess)
        {
            throw _client.Failure(reply.Status, action, reply.Status switch
            {
                404 => "no such KV v2 secret (SecretPath is mount/path, without data/)",
                403 => "the role's policies do not allow reading it",
                _ => null,
            });
        }

        var readAt = _time.GetUtcNow();
        using var document = _client.Parse(reply, action);
        if (!document.RootElement.TryGetProperty("data", out var outer) || outer.ValueKind != JsonValueKind.Object ||
            !outer.TryGetProperty("data", out var data))
        {
            throw new CredentialFetchException(_client.Prefix(action) + "the answer is not a KV v2 secret (no data.data); is the mount KV version 1?", isTransient: false);
        }

        if (data.ValueKind != JsonValueKind.Object)
        {
            // KV v2 answers data: null for a version that was deleted or destroyed.
            throw new CredentialFetchException("Vault secret " + _settings.ConfiguredPath + " has no data (its current version is deleted or destroyed)", isTransient: false);
        }

        if (!data.TryGetProperty(_settings.Field!, out var field))
        {
            throw new CredentialFetchException("Vault secret " + _settings.ConfiguredPath + " has no field '" + _settings.Field + "'", isTransient: false);
        }

        if (field.ValueKind != JsonValueKind.String || field.GetString() is not { Length: > 0 } value)
        {
            throw new CredentialFetchException("field '" + _settings.Field + "' of Vault secret " + _settings.ConfiguredPath + " is not a non-empty string", isTransient: false);
        }

        SecretFileReader.EnsurePrintable(value, "field '" + _settings.Field + "' of Vault secret " + _settings.ConfiguredPath);
        return new Credential(value, username, readAt, readAt + _settings.ReadInterval);
    }

    /// <summary>Issues new dynamic credentials: user name and password from this one answer.</summary>
    private async Task<Credential> IssueAsync(CancellationToken cancellationToken)
    {
        var action = "issuing credentials from " + _settings.ConfiguredPath;
        // The lease's TTL runs from when Vault issued it, before its answer arrived: timed from the
        // request (as the token is), the proxy never believes a lease alive after Vault has dropped its user.
        var requestedAt = _time.GetUtcNow();
        var (reply, token) = await SendWithTokenAsync(HttpMethod.Get, _settings.ReadPath, null, action, forIssue: true, cancellationToken).ConfigureAwait(false);
        if (!reply.IsSuccess)
        {
            throw _client.Failure(reply.Status, action, reply.Status switch
            {
                404 => "no such dynamic secrets path or role",
                403 => "the role's policies do not allow reading it",
                _ => null,
            });
        }

        var issuedAt = _time.GetUtcNow();
        string leaseId, username, password;
        double seconds;
        bool renewable;
        using (var document = _client.Parse(reply, action))
        {
            var root = document.RootElement;
            leaseId = root.TryGetProperty("lease_id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString()! : string.Empty;
            seconds = root.TryGetProperty("lease_duration", out var duration) && duration.ValueKind == JsonValueKind.Number && duration.TryGetDouble(out var d) ? d : 0;
            renewable = root.TryGetProperty("renewable", out var r) && r.ValueKind == JsonValueKind.True;
            if (!root.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object ||
                !data.TryGetProperty("username", out var u) || u.ValueKind != JsonValueKind.String || u.GetString() is not { Length: > 0 } user ||
                !data.TryGetProperty("password", out var p) || p.ValueKind != JsonValueKind.String || p.GetString() is not { Length: > 0 } pass)
            {
                throw new CredentialFetchException(_client.Prefix(action) + "the answer has no data.username and data.password (is it a database-style secrets engine?)", isTransient: false);
            }

            (username, password) = (user, pass);
        }

        SecretFileReader.EnsurePrintable(username, "the user name Vault issued");
        SecretFileReader.EnsurePrintable(password, "the password Vault issued");

        // A lease without a duration (some engines) is re-read like a KV secret; one with a
        // duration ends then, or earlier with the token that issued it: Vault revokes a token's
        // leases when the token expires.
        var asked = seconds > 0 ? TimeSpan.FromSeconds(Math.Min(seconds, TimeSpan.FromDays(365).TotalSeconds)) : _settings.ReadInterval;
        var expiresAt = Earliest(requestedAt + asked, token.ExpiresAt);
        var lease = new Lease(leaseId, username, password, asked, seconds > 0 && renewable && leaseId.Length > 0, expiresAt, token.ExpiresAt);
        bool released;
        lock (_gate)
        {
            released = _released;
            if (!released)
            {
                if (_lease is not null)
                {
                    _superseded.RemoveAll(l => l.ExpiresAt <= issuedAt);
                    _superseded.Add(_lease);
                }

                _lease = lease;
            }
        }

        if (released)
        {
            // Issued while the source was being released: give it back at once rather than leave a
            // live database user nobody will ever revoke.
            await RevokeLeasesAsync([lease], token, cancellationToken).ConfigureAwait(false);
            throw new CredentialFetchException("the credential was released (the proxy is stopping or a reload dropped it)", isTransient: false);
        }

        Log.LeaseIssued(_logger, leaseId, _settings.ConfiguredPath, username, asked.TotalSeconds, lease.Renewable);
        return lease.ToCredential(issuedAt);
    }

    /// <summary>
    /// Renews the lease for its original duration. Returns the same user with the new expiry, or
    /// null when new credentials should be issued instead (renewal refused, failed, or granted
    /// less than asked: the lease's max TTL, or its token's end, is near).
    /// </summary>
    private async Task<Credential?> TryRenewAsync(Lease lease, CancellationToken cancellationToken)
    {
        var action = "renewing the lease";
        try
        {
            var increment = (long)Math.Ceiling(lease.Duration.TotalSeconds);
            // As for issuing: the renewed TTL is timed from the request, never from the answer.
            var requestedAt = _time.GetUtcNow();
            var (reply, _) = await SendWithTokenAsync(
                HttpMethod.Put,
                "sys/leases/renew",
                w =>
                {
                    w.WriteString("lease_id", lease.LeaseId);
                    w.WriteNumber("increment", increment);
                },
                action,
                forIssue: false,
                cancellationToken).ConfigureAwait(false);
            if (!reply.IsSuccess)
            {
                Log.LeaseRenewalFailed(_logger, lease.LeaseId, _client.Failure(reply.Status, action).Message);
                return null;
            }

            var renewedAt = _time.GetUtcNow();
            double granted;
            using (var document = _client.Parse(reply, action))
            {
                granted = document.RootElement.TryGetProperty("lease_duration", out var duration) && duration.ValueKind == JsonValueKind.Number && duration.TryGetDouble(out var d) ? d : 0;
            }

            var expiresAt = Earliest(requestedAt + TimeSpan.FromSeconds(granted), lease.IssuerTokenExpiresAt);
            if (granted < increment || expiresAt < requestedAt + lease.Duration)
            {
                Log.LeaseRenewalShort(_logger, lease.LeaseId, (expiresAt - requestedAt).TotalSeconds, increment);
                return null;
            }

            var renewed = lease with { ExpiresAt = expiresAt };
            lock (_gate)
            {
                if (!ReferenceEquals(_lease, lease))
                {
                    // Released (or superseded) while renewing: do not bring it back.
                    return null;
                }

                _lease = renewed;
            }

            Log.LeaseRenewed(_logger, lease.LeaseId, granted);
            return renewed.ToCredential(renewedAt);
        }
        catch (CredentialFetchException ex)
        {
            // Issuing anew is the answer to every renewal failure; if Vault is down, that fails too
            // and is retried as usual.
            Log.LeaseRenewalFailed(_logger, lease.LeaseId, ex.Message);
            return null;
        }
    }

    /// <summary>
    /// Sends with the cached Vault token, logging in first when there is none or it is near its
    /// end. A 403 with a cached token (revoked, or expired early) leads to one login and one retry.
    /// </summary>
    /// <param name="forIssue">Issuing a lease: the token must have at least half its TTL left, since the lease dies with it.</param>
    private async Task<(VaultClient.Reply Reply, VaultToken Token)> SendWithTokenAsync(HttpMethod method, string path, Action<Utf8JsonWriter>? body, string action, bool forIssue, CancellationToken cancellationToken)
    {
        VaultToken? token;
        lock (_gate)
        {
            token = _token;
        }

        var now = _time.GetUtcNow();
        var fresh = false;
        if (token is null || !(forIssue ? token.FitForIssueAt(now) : token.UsableAt(now)))
        {
            token = await LoginAsync(cancellationToken).ConfigureAwait(false);
            fresh = true;
        }

        var reply = await _client.SendAsync(method, path, body, token.Value, action, cancellationToken).ConfigureAwait(false);
        if (reply.Status == 403 && !fresh)
        {
            Log.LoginAgain(_logger, _client.Host, action);
            lock (_gate)
            {
                if (ReferenceEquals(_token, token))
                {
                    _token = null;
                }
            }

            token = await LoginAsync(cancellationToken).ConfigureAwait(false);
            reply = await _client.SendAsync(method, path, body, token.Value, action, cancellationToken).ConfigureAwait(false);
        }

        return (reply, token);
    }

    /// <summary>POST auth/{mount}/login with the role and the workload token; caches the Vault token.</summary>
    private async Task<VaultToken> LoginAsync(CancellationToken cancellationToken)
    {
        var identity = await _identity.GetAsync(cancellationToken).ConfigureAwait(false);
        if (identity.Identity is null)
        {
            // Not retried within this fetch: the cache's backoff asks again, by when a rotated token may be there.
            throw new CredentialFetchException("no valid workload identity to log in to Vault with: " + identity.FailureReason, isTransient: false);
        }

        var jwt = identity.Identity.Token;
        var action = "logging in with auth/" + _settings.AuthMount + " role " + _settings.Role;
        var requestedAt = _time.GetUtcNow();
        // The kubernetes method takes the same body: {"role", "jwt"}.
        var reply = await _client.SendAsync(HttpMethod.Post, "auth/" + _settings.AuthMount + "/login", w =>
        {
            w.WriteString("role", _settings.Role);
            w.WriteString("jwt", jwt);
        }, null, action, cancellationToken).ConfigureAwait(false);
        if (!reply.IsSuccess)
        {
            throw _client.Failure(reply.Status, action, reply.Status switch
            {
                400 => "unknown role, or the workload token's claims or audience do not match it",
                403 => "the workload token is not accepted for this role",
                404 => "no auth method is mounted there",
                _ => null,
            });
        }

        string? clientToken = null;
        double seconds = 0;
        using (var document = _client.Parse(reply, action))
        {
            if (document.RootElement.TryGetProperty("auth", out var auth) && auth.ValueKind == JsonValueKind.Object)
            {
                if (auth.TryGetProperty("client_token", out var t) && t.ValueKind == JsonValueKind.String)
                {
                    clientToken = t.GetString();
                }

                if (auth.TryGetProperty("lease_duration", out var d) && d.ValueKind == JsonValueKind.Number && d.TryGetDouble(out var n) && n > 0)
                {
                    seconds = Math.Min(n, TimeSpan.FromDays(365).TotalSeconds);
                }
            }
        }

        if (string.IsNullOrEmpty(clientToken))
        {
            throw new CredentialFetchException(_client.Prefix(action) + "the answer has no auth.client_token", isTransient: true);
        }

        SecretFileReader.EnsurePrintable(clientToken, "the Vault token");
        var token = new VaultToken(clientToken, seconds > 0 ? TimeSpan.FromSeconds(seconds) : null, requestedAt, _settings.Timeout);
        lock (_gate)
        {
            _token = token;
        }

        Log.LoggedIn(_logger, _client.Host, _settings.AuthMount, _settings.Role, seconds);
        return token;
    }

    private static DateTimeOffset Earliest(DateTimeOffset a, DateTimeOffset? b) => b is { } other && other < a ? other : a;

    /// <summary>A Vault token. Lifetime from the login's request time, so it is never overestimated.</summary>
    private sealed class VaultToken(string value, TimeSpan? ttl, DateTimeOffset obtainedAt, TimeSpan timeout)
    {
        public string Value { get; } = value;

        /// <summary>Null for a token without expiry.</summary>
        public DateTimeOffset? ExpiresAt { get; } = ttl is { } t ? obtainedAt + t : null;

        /// <summary>Worth sending: more than a tenth of its TTL (and more than one call's timeout) left.</summary>
        public bool UsableAt(DateTimeOffset now) =>
            ExpiresAt is not { } end || end - now > TimeSpan.FromTicks(Math.Max(ttl!.Value.Ticks / 10, timeout.Ticks));

        /// <summary>A lease dies with the token that issued it, so issuing wants at least half the token's TTL left.</summary>
        public bool FitForIssueAt(DateTimeOffset now) =>
            ExpiresAt is not { } end || (end - now > ttl!.Value / 2 && UsableAt(now));

        public override string ToString() => "VaultToken(***)";
    }

    /// <summary>A dynamic secret's lease. It holds the password, so it cannot be printed.</summary>
    private sealed record Lease(string LeaseId, string Username, string Password, TimeSpan Duration, bool Renewable, DateTimeOffset ExpiresAt, DateTimeOffset? IssuerTokenExpiresAt)
    {
        public Credential ToCredential(DateTimeOffset now) => new(Password, Username, now, ExpiresAt);

        public override string ToString() => "Lease(" + LeaseId + ")";
    }

    private static partial class Log
    {
        [LoggerMessage(LoggedInEvent, LogLevel.Information, "Logged in to Vault at {VaultHost} with auth/{AuthMount} role {Role}; token valid for {TtlSeconds} s (0: no expiry)")]
        public static partial void LoggedIn(ILogger logger, string vaultHost, string authMount, string role, double ttlSeconds);

        [LoggerMessage(LoginAgainEvent, LogLevel.Information, "Vault at {VaultHost} denied {Action} with the cached token; logging in again")]
        public static partial void LoginAgain(ILogger logger, string vaultHost, string action);

        [LoggerMessage(LeaseIssuedEvent, LogLevel.Information, "Vault issued lease {LeaseId} from {VaultPath} for user {Username}, {TtlSeconds} s, renewable {Renewable}")]
        public static partial void LeaseIssued(ILogger logger, string leaseId, string vaultPath, string username, double ttlSeconds, bool renewable);

        [LoggerMessage(LeaseRenewedEvent, LogLevel.Information, "Renewed Vault lease {LeaseId} for {TtlSeconds} s")]
        public static partial void LeaseRenewed(ILogger logger, string leaseId, double ttlSeconds);

        [LoggerMessage(LeaseRenewalShortEvent, LogLevel.Information, "Vault renewed lease {LeaseId} for only {TtlSeconds} s of {RequestedSeconds} s asked (its max TTL is near); issuing new credentials")]
        public static partial void LeaseRenewalShort(ILogger logger, string leaseId, double ttlSeconds, long requestedSeconds);

        [LoggerMessage(LeaseRenewalFailedEvent, LogLevel.Warning, "Renewing Vault lease {LeaseId} failed: {Reason}; issuing new credentials")]
        public static partial void LeaseRenewalFailed(ILogger logger, string leaseId, string reason);

        [LoggerMessage(LeaseRevokedEvent, LogLevel.Information, "Revoked Vault lease {LeaseId} of {VaultPath}")]
        public static partial void LeaseRevoked(ILogger logger, string leaseId, string vaultPath);

        [LoggerMessage(LeaseRevokeFailedEvent, LogLevel.Warning, "Revoking Vault lease {LeaseId} failed: {Reason}; it ends at its TTL, {ExpiresAt}")]
        public static partial void LeaseRevokeFailed(ILogger logger, string leaseId, string reason, DateTimeOffset expiresAt);
    }
}
