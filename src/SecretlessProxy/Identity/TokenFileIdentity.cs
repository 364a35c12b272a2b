using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Identity;

/// <summary>
/// The workload identity read from a token file (a Kubernetes projected service-account token, a
/// SPIFFE JWT-SVID, a CI OIDC token), verified against the issuer's keys when configured.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="GetAsync"/> runs on every request that needs a credential. Between looks at the file
/// it reads one immutable snapshot and compares two times: no lock, no allocation. At most once per
/// <see cref="StatInterval"/> a single refresh stats the file (a projected volume rotates by
/// swapping its <c>..data</c> symlink with rename(2), which <see cref="FileStamp"/> sees through)
/// and re-reads and re-validates only when it changed. Expiry is judged against the injected clock
/// on every call, so an identity that expires turns invalid without any file change.
/// </para>
/// <para>
/// Failure reasons are built here from the token's public claims and never from IdentityModel's
/// exception messages, which can quote the token.
/// </para>
/// </remarks>
internal sealed partial class TokenFileIdentity : IWorkloadIdentitySource
{
    /// <summary>
    /// How often the token file is looked at (stat only, unless it changed). A tenth of a second,
    /// so a token replaced by one that is expired or names another workload is enforced as fast as
    /// a config file swap (time to revoke, bench/RESULTS.md); a stat costs microseconds and happens
    /// only when a request asks.
    /// </summary>
    internal static readonly TimeSpan StatInterval = TimeSpan.FromMilliseconds(100);

    private static readonly IdentityStatus Stopped = IdentityStatus.Invalid("workload identity is stopped (configuration replaced or proxy shutting down)");

    private readonly TokenFileIdentitySettings _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SigningKeySource? _keys;
    private readonly JsonWebTokenHandler _handler = new();
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationToken _stoppingToken;

    private volatile Snapshot? _snapshot;
    private Task<IdentityStatus>? _refresh;
    private bool _disposed;

    public TokenFileIdentity(TokenFileIdentitySettings settings, TimeProvider time, HttpMessageInvoker http, ILogger<TokenFileIdentity> logger)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(logger);

        _settings = settings;
        _time = time;
        _logger = logger;
        _stoppingToken = _stopping.Token;
        var keysHttp = settings.KeysEndpoint is { } endpoint ? IssuerTransport.InvokerFor(endpoint, http) : http;
        _keys = settings.Verifies ? new SigningKeySource(settings.JwksUrl, settings.Issuer, time, keysHttp, logger) : null;
    }

    /// <summary>
    /// The current identity, or why there is none. Never throws for a bad token, file or key
    /// endpoint, nor after <see cref="Dispose"/> (a request racing a configuration reload gets the
    /// last answer): only the caller's own cancellation throws, and it stops only this caller's
    /// wait; a refresh in progress goes on for the others.
    /// </summary>
    public ValueTask<IdentityStatus> GetAsync(CancellationToken cancellationToken)
    {
        var snapshot = _snapshot;
        if (snapshot is not null)
        {
            var now = _time.GetUtcNow();
            if (now < snapshot.CheckAfter)
            {
                return new ValueTask<IdentityStatus>(snapshot.Status);
            }

            // Due for a look at the file, and another caller is already looking: the current answer
            // stands, unless it is an identity that has expired in the meantime.
            if (Volatile.Read(ref _refresh) is { IsCompleted: false } && !snapshot.HasExpired(now))
            {
                return new ValueTask<IdentityStatus>(snapshot.Status);
            }
        }

        return new ValueTask<IdentityStatus>(RefreshAsync(cancellationToken));
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        _stopping.Cancel();
        _stopping.Dispose();
    }

    private Task<IdentityStatus> RefreshAsync(CancellationToken cancellationToken)
    {
        Task<IdentityStatus> refresh;
        lock (_gate)
        {
            // A refresh may have finished between the caller's look and taking the lock.
            var snapshot = _snapshot;
            if (_disposed)
            {
                return Task.FromResult(snapshot?.Status ?? Stopped);
            }

            if (snapshot is not null && _time.GetUtcNow() < snapshot.CheckAfter)
            {
                return Task.FromResult(snapshot.Status);
            }

            if (_refresh is null || _refresh.IsCompleted)
            {
                // Not tied to this caller's token: the refresh serves every caller waiting on it.
                Volatile.Write(ref _refresh, Task.Run(RefreshCoreAsync, CancellationToken.None));
            }

            refresh = _refresh!;
        }

        return cancellationToken.CanBeCanceled ? refresh.WaitAsync(cancellationToken) : refresh;
    }

    private async Task<IdentityStatus> RefreshCoreAsync()
    {
        var previous = _snapshot;
        Snapshot next;
        try
        {
            next = await EvaluateAsync(previous, _stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stoppingToken.IsCancellationRequested)
        {
            return previous?.Status ?? Stopped;
        }
        catch (Exception ex)
        {
            // Whatever broke, the answer is a reason, not a crash; the next look tries again.
            next = Snapshot.Failed(
                "identity token from " + _settings.Path + " could not be validated (" + ex.GetType().Name + ")",
                stamp: null,
                token: null,
                revalidate: true,
                checkAfter: _time.GetUtcNow() + StatInterval);
        }

        _snapshot = next;
        Report(previous?.Status, next.Status);
        return next.Status;
    }

    private async Task<Snapshot> EvaluateAsync(Snapshot? previous, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var stamp = FileStamp.Read(_settings.Path);
        if (previous?.Token is not null && stamp is not null && previous.Stamp == stamp)
        {
            return previous.Revalidate
                ? await ValidateAsync(previous.Token, stamp, cancellationToken).ConfigureAwait(false)
                : previous.Recheck(now, stamp);
        }

        string token;
        try
        {
            token = await SecretFileReader.ReadAsync(_settings.Path, "identity token", cancellationToken).ConfigureAwait(false);
        }
        catch (CredentialFetchException ex)
        {
            // SecretFile's messages name the file and what is wrong with it, never its content.
            return Snapshot.Failed(ex.Message, stamp: null, token: null, revalidate: false, checkAfter: now + StatInterval);
        }

        // Touched but not changed (or changed back): no need to validate again.
        if (previous is { Revalidate: false } && string.Equals(previous.Token, token, StringComparison.Ordinal))
        {
            return previous.Recheck(now, stamp);
        }

        return await ValidateAsync(token, stamp, cancellationToken).ConfigureAwait(false);
    }

    private async Task<Snapshot> ValidateAsync(string token, FileStamp? stamp, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var checkAfter = now + StatInterval;

        JsonWebToken jwt;
        try
        {
            if (!_handler.CanReadToken(token))
            {
                return Snapshot.Failed("identity token is not a JWT", stamp, token, revalidate: false, checkAfter);
            }

            jwt = _handler.ReadJsonWebToken(token);
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or JsonException or FormatException)
        {
            return Snapshot.Failed("identity token is not a JWT", stamp, token, revalidate: false, checkAfter);
        }

        if (jwt.IsEncrypted)
        {
            return Snapshot.Failed("identity token is an encrypted JWT (JWE); only signed tokens are supported", stamp, token, revalidate: false, checkAfter);
        }

        if (_keys is not null && string.IsNullOrEmpty(jwt.EncodedSignature))
        {
            return Snapshot.Failed("identity token is not signed", stamp, token, revalidate: false, checkAfter);
        }

        var claims = TokenClaims.Read(jwt);
        var skew = _settings.ClockSkew;

        // Lifetime first, with or without verification: an expired token is refused either way.
        // Expiry is judged at exp exactly (no skew): an expired credential is never sent.
        if (claims.ExpiresAt is { } exp && now >= exp)
        {
            return Snapshot.Failed(ExpiredReason(exp), stamp, token, revalidate: false, checkAfter);
        }

        if (claims.ExpiresAt is null && _keys is not null)
        {
            return Snapshot.Failed("identity token has no expiry (exp)", stamp, token, revalidate: false, checkAfter);
        }

        if (claims.NotBefore is { } nbf && nbf > now + skew)
        {
            // Becomes valid without a file change: look again at the next interval.
            return Snapshot.Failed("identity token is not valid before " + FormatTime(nbf), stamp, token, revalidate: true, checkAfter);
        }

        if (_keys is null)
        {
            return Snapshot.Valid(claims.ToIdentity(token, verified: false), claims.ExpiresAt, stamp, token, now);
        }

        if (_settings.Issuer is { } issuer && !string.Equals(claims.Issuer, issuer, StringComparison.Ordinal))
        {
            return Snapshot.Failed(IssuerReason(claims.Issuer, issuer), stamp, token, revalidate: false, checkAfter);
        }

        if (_settings.Audience is { } audience && !claims.Audiences.Contains(audience, StringComparer.Ordinal))
        {
            return Snapshot.Failed("identity token audience does not include '" + audience + "'", stamp, token, revalidate: false, checkAfter);
        }

        // An unknown kid usually means the issuer rotated its keys: fetch them again (rate-limited).
        var kid = string.IsNullOrEmpty(jwt.Kid) ? null : jwt.Kid;
        var keysError = await _keys.EnsureAsync(refresh: kid is not null && !_keys.Contains(kid), cancellationToken).ConfigureAwait(false);
        if (keysError is not null)
        {
            return Snapshot.Failed(keysError, stamp, token, revalidate: true, checkAfter);
        }

        var keysUsed = _keys.Keys;
        var result = await _handler.ValidateTokenAsync(jwt, Parameters(keysUsed)).ConfigureAwait(false);
        if (!result.IsValid && result.Exception is SecurityTokenInvalidSignatureException)
        {
            // A key replaced under the same kid: one more (rate-limited) fetch before giving up.
            if (await _keys.EnsureAsync(refresh: true, cancellationToken).ConfigureAwait(false) is null && !ReferenceEquals(keysUsed, _keys.Keys))
            {
                result = await _handler.ValidateTokenAsync(jwt, Parameters(_keys.Keys)).ConfigureAwait(false);
            }
        }

        now = _time.GetUtcNow();
        if (result.IsValid)
        {
            return Snapshot.Valid(claims.ToIdentity(token, verified: true), claims.ExpiresAt, stamp, token, now);
        }

        var (reason, revalidate) = Explain(result.Exception, claims, kid);
        return Snapshot.Failed(reason, stamp, token, revalidate, now + StatInterval);
    }

    private TokenValidationParameters Parameters(IReadOnlyList<SecurityKey> keys) =>
        JwtValidation.Parameters(keys, _settings.Issuer, _settings.Audience, _settings.ClockSkew, _time);

    /// <summary>
    /// IdentityModel's verdict in our own words. Its exception messages are never used: they can
    /// quote the token (or all of it when PII logging is switched on).
    /// </summary>
    private (string Reason, bool Revalidate) Explain(Exception? exception, TokenClaims claims, string? kid) => exception switch
    {
        SecurityTokenSignatureKeyNotFoundException => (
            "identity token signature does not verify against the keys from " + _keys!.KeysFrom
                + (kid is null ? string.Empty : " (no key with id '" + Printable(kid) + "')"),
            true),
        SecurityTokenInvalidSignatureException => ("identity token signature does not verify against the keys from " + _keys!.KeysFrom, true),
        SecurityTokenInvalidAlgorithmException => ("identity token is signed with an algorithm that is not accepted (RSA or ECDSA only)", false),
        SecurityTokenExpiredException when claims.ExpiresAt is { } exp => (ExpiredReason(exp), false),
        SecurityTokenNotYetValidException when claims.NotBefore is { } nbf => ("identity token is not valid before " + FormatTime(nbf), true),
        SecurityTokenNoExpirationException => ("identity token has no expiry (exp)", false),
        SecurityTokenInvalidLifetimeException => ExplainLifetime(claims, _time.GetUtcNow()),
        SecurityTokenInvalidIssuerException => (IssuerReason(claims.Issuer, _settings.Issuer ?? string.Empty), false),
        SecurityTokenInvalidAudienceException => ("identity token audience does not include '" + _settings.Audience + "'", false),
        null => ("identity token was rejected", true),
        _ => ("identity token was rejected (" + exception.GetType().Name + ")", true),
    };

    /// <summary>
    /// RFC 7519 sections 4.1.4 and 4.1.5; exp is required. The clock skew applies to nbf only (a
    /// token minted by a clock a little ahead is usable); exp is judged exactly, so a token is
    /// never forwarded after it has expired.
    /// </summary>
    private (string Reason, bool Revalidate) ExplainLifetime(TokenClaims claims, DateTimeOffset now)
    {
        var skew = _settings.ClockSkew;
        return claims switch
        {
            { ExpiresAt: null } => ("identity token has no expiry (exp)", false),
            { ExpiresAt: { } exp } when now >= exp => (ExpiredReason(exp), false),
            { NotBefore: { } nbf } when nbf > now + skew => ("identity token is not valid before " + FormatTime(nbf), true),
            _ => ("identity token has an invalid lifetime (nbf after exp)", false),
        };
    }

    private static string ExpiredReason(DateTimeOffset exp) => "identity token expired at " + FormatTime(exp);

    private static string IssuerReason(string? actual, string configured) => actual is null
        ? "identity token has no issuer (iss); the configured issuer is '" + configured + "'"
        : "identity token issuer '" + Printable(actual) + "' is not the configured '" + configured + "'";

    private static string FormatTime(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>A claim value fit for a message: bounded, and no control characters to forge log lines with.</summary>
    private static string Printable(string value)
    {
        const int Max = 128;
        var builder = new StringBuilder(Math.Min(value.Length, Max) + 3);
        foreach (var c in value.AsSpan(0, Math.Min(value.Length, Max)))
        {
            builder.Append(char.IsControl(c) ? '?' : c);
        }

        return value.Length > Max ? builder.Append("...").ToString() : builder.ToString();
    }

    private void Report(IdentityStatus? before, IdentityStatus after)
    {
        if (after.Identity is { } identity)
        {
            if (!ReferenceEquals(before?.Identity, identity))
            {
                Log.TokenAccepted(_logger, _settings.Path, identity.Subject, identity.Issuer, identity.ExpiresAt, identity.Verified);
            }
        }
        else if (before is null || before.IsValid || !string.Equals(before.FailureReason, after.FailureReason, StringComparison.Ordinal))
        {
            Log.TokenRejected(_logger, after.FailureReason!);
        }
    }

    /// <summary>One answer and what it was derived from; replaced whole, never changed.</summary>
    private sealed class Snapshot
    {
        private Snapshot(IdentityStatus status, FileStamp? stamp, string? token, DateTimeOffset? validUntil, bool revalidate, DateTimeOffset checkAfter)
        {
            Status = status;
            Stamp = stamp;
            Token = token;
            ValidUntil = validUntil;
            Revalidate = revalidate;
            CheckAfter = checkAfter;
        }

        public IdentityStatus Status { get; }

        public FileStamp? Stamp { get; }

        /// <summary>The file content this answer is for (null when the file could not be read).</summary>
        public string? Token { get; }

        /// <summary>The expiry (<c>exp</c>, no skew), for a valid identity that has one.</summary>
        public DateTimeOffset? ValidUntil { get; }

        /// <summary>The verdict can change without a file change (keys, nbf): validate again at the next look.</summary>
        public bool Revalidate { get; }

        /// <summary>Until then the answer stands without looking at the file or the clock again.</summary>
        public DateTimeOffset CheckAfter { get; }

        public bool HasExpired(DateTimeOffset now) => ValidUntil is { } until && now >= until;

        public static Snapshot Valid(WorkloadIdentity identity, DateTimeOffset? validUntil, FileStamp? stamp, string token, DateTimeOffset now) =>
            new(IdentityStatus.Valid(identity), stamp, token, validUntil, revalidate: false, CheckAfterFor(validUntil, now));

        public static Snapshot Failed(string reason, FileStamp? stamp, string? token, bool revalidate, DateTimeOffset checkAfter) =>
            new(IdentityStatus.Invalid(reason), stamp, token, validUntil: null, revalidate, checkAfter);

        /// <summary>The same token as before: only the clock can have changed the verdict.</summary>
        public Snapshot Recheck(DateTimeOffset now, FileStamp? stamp)
        {
            if (Status.Identity is { ExpiresAt: { } exp } && HasExpired(now))
            {
                return Failed(ExpiredReason(exp), stamp, Token, revalidate: false, now + StatInterval);
            }

            return new Snapshot(Status, stamp, Token, ValidUntil, Revalidate, CheckAfterFor(ValidUntil, now));
        }

        // The end of validity forces the slow path, which turns the answer invalid.
        private static DateTimeOffset CheckAfterFor(DateTimeOffset? validUntil, DateTimeOffset now)
        {
            var next = now + StatInterval;
            return validUntil is { } until && until < next ? until : next;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.IdentityTokenAccepted, LogLevel.Information, "Workload identity token from {TokenPath} accepted: subject {Subject}, issuer {Issuer}, expires {ExpiresAt}, verified {Verified}")]
        public static partial void TokenAccepted(ILogger logger, string tokenPath, string? subject, string? issuer, DateTimeOffset? expiresAt, bool verified);

        [LoggerMessage(EventIds.IdentityTokenRejected, LogLevel.Warning, "Workload identity unavailable: {Reason}")]
        public static partial void TokenRejected(ILogger logger, string reason);
    }
}
