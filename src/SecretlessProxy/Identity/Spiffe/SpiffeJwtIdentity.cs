using System.Globalization;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// The workload identity as a JWT-SVID from the SPIFFE Workload API: fetched for the configured
/// audience, verified against the JWT bundle of its trust domain from the same agent, and fetched
/// again at half its remaining lifetime by a background loop on the injected clock. When the agent
/// cannot be reached the loop retries with exponential backoff (1 s doubling to 30 s) and the
/// current SVID keeps serving while it is valid; once it has expired every request that needs the
/// identity gets the reason, and the next successful fetch restores it without a restart.
/// </summary>
/// <remarks>
/// <see cref="GetAsync"/> reads one immutable answer and compares one time: no lock, no call to the
/// agent on the request path. Only the first request waits, for the first fetch.
/// </remarks>
internal sealed partial class SpiffeJwtIdentity : IWorkloadIdentitySource
{
    internal static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1);
    internal static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>The SVID is fetched anew at most this often, however short its lifetime.</summary>
    internal static readonly TimeSpan MinRefreshInterval = TimeSpan.FromSeconds(1);

    private readonly SpiffeJwtIdentitySettings _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly WorkloadApiClient _client;
    private readonly JsonWebTokenHandler _handler = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _firstAttempt = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _loop;

    private volatile Answer _answer;
    private int _disposed;

    public SpiffeJwtIdentity(SpiffeJwtIdentitySettings settings, TimeProvider time, ILogger<SpiffeJwtIdentity> logger)
    {
        _settings = settings;
        _time = time;
        _logger = logger;
        _client = new WorkloadApiClient(settings.SocketPath, settings.CallTimeout);
        _answer = new Answer(IdentityStatus.Invalid("the JWT-SVID is being fetched from the SPIFFE Workload API at " + _client.Display), null, null);
        _loop = Task.Run(RunAsync, CancellationToken.None);
    }

    /// <summary>The background loop: completes (never faults) once it has stopped after <see cref="Dispose"/>.</summary>
    internal Task Loop => _loop;

    public async ValueTask<IdentityStatus> GetAsync(CancellationToken cancellationToken)
    {
        if (!_firstAttempt.Task.IsCompleted)
        {
            await _firstAttempt.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        var answer = _answer;
        if (answer.ValidUntil is { } until && _time.GetUtcNow() >= until)
        {
            return IdentityStatus.Invalid("the JWT-SVID for " + answer.Status.Identity!.Subject + " expired at " + Format(answer.Status.Identity.ExpiresAt!.Value)
                + " and could not be renewed: " + (answer.LastFailure ?? "the renewal is in progress"));
        }

        return answer.Status;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _stopping.Cancel();

        // The loop disposes the client and the token source when it sees the cancellation.
        _firstAttempt.TrySetResult();
    }

    private async Task RunAsync()
    {
        var token = _stopping.Token;
        var failures = 0;
        try
        {
            while (!token.IsCancellationRequested)
            {
                TimeSpan delay;
                try
                {
                    var identity = await FetchAsync(token).ConfigureAwait(false);
                    var now = _time.GetUtcNow();
                    var previous = _answer;
                    _answer = new Answer(IdentityStatus.Valid(identity), identity.ExpiresAt, null);
                    failures = 0;
                    if (previous.Status.Identity?.Subject != identity.Subject || !previous.Status.IsValid)
                    {
                        Log.SvidAccepted(_logger, _client.Display, identity.Subject, _settings.Audience, identity.ExpiresAt);
                    }

                    // Half the remaining lifetime: a failed renewal leaves the other half for retries.
                    var half = TimeSpan.FromTicks((identity.ExpiresAt!.Value - now).Ticks / 2);
                    delay = half < MinRefreshInterval ? MinRefreshInterval : half;
                }
                catch (Exception ex) when (!token.IsCancellationRequested)
                {
                    // Whatever broke, the answer is a reason and the loop goes on; only our own
                    // messages are shown (another exception's could quote what the agent sent).
                    var reason = ex is WorkloadApiException or SvidRejectedException
                        ? ex.Message
                        : "fetching the JWT-SVID from the SPIFFE Workload API at " + _client.Display + " failed (" + ex.GetType().Name + ")";
                    failures++;
                    var previous = _answer;
                    var stillValid = previous.Status.IsValid && (previous.ValidUntil is not { } until || _time.GetUtcNow() < until);
                    _answer = stillValid ? previous with { LastFailure = reason } : new Answer(IdentityStatus.Invalid(reason), null, reason);
                    if (failures == 1 || failures % 10 == 0)
                    {
                        Log.FetchFailed(_logger, reason, stillValid, failures);
                    }

                    delay = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, FirstBackoff.Ticks << Math.Min(failures - 1, 10)));
                }

                _firstAttempt.TrySetResult();
                await Task.Delay(delay, _time, token).ConfigureAwait(false);
            }
        }
        catch (Exception) when (token.IsCancellationRequested)
        {
            // Stopped: the configuration was replaced or the proxy is shutting down. gRPC reports
            // the cancellation as RpcException(Cancelled), not OperationCanceledException, and the
            // loop must not end as an unobserved faulted task.
        }
        finally
        {
            _firstAttempt.TrySetResult();
            _client.Dispose();
            _stopping.Dispose();
        }
    }

    /// <summary>One JWT-SVID, verified against the JWT bundle of its trust domain.</summary>
    private async Task<WorkloadIdentity> FetchAsync(CancellationToken cancellationToken)
    {
        var bundles = JwtBundleSet.Parse((await _client.FetchJwtBundlesAsync(cancellationToken).ConfigureAwait(false)).Bundles);
        var response = await _client.FetchJwtSvidAsync(_settings.Audience, _settings.SpiffeId, cancellationToken).ConfigureAwait(false);
        var svid = response.Svids.FirstOrDefault(s => _settings.SpiffeId is null || s.SpiffeId == _settings.SpiffeId)
            ?? throw new SvidRejectedException("the SPIFFE Workload API at " + _client.Display + " issued no JWT-SVID" + (_settings.SpiffeId is null ? string.Empty : " for " + _settings.SpiffeId) + " for audience '" + _settings.Audience + "'");
        if (!SpiffeId.TryParse(svid.SpiffeId, out var id, out var idError))
        {
            throw new SvidRejectedException("the JWT-SVID's SPIFFE ID " + idError);
        }

        var keys = bundles.KeysOf(id!.TrustDomainId)
            ?? throw new SvidRejectedException("the SPIFFE Workload API at " + _client.Display + " has no JWT bundle for the trust domain " + id.TrustDomainId + ", so the JWT-SVID for " + id + " cannot be verified");
        var result = await _handler.ValidateTokenAsync(svid.Svid, Parameters(keys)).ConfigureAwait(false);
        if (!result.IsValid)
        {
            // IdentityModel's messages can quote the token: only the exception's type is named.
            var why = result.Exception switch
            {
                SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => "its signature does not verify against the JWT bundle of " + id.TrustDomainId,
                SecurityTokenInvalidAudienceException => "its audience does not include '" + _settings.Audience + "'",
                SecurityTokenInvalidLifetimeException or SecurityTokenExpiredException or SecurityTokenNoExpirationException => "it has expired or has no valid lifetime",
                SecurityTokenInvalidAlgorithmException => "it is signed with an algorithm that is not accepted (RSA or ECDSA only)",
                { } other => "it was rejected (" + other.GetType().Name + ")",
                null => "it was rejected",
            };
            throw new SvidRejectedException("the JWT-SVID for " + id + " from " + _client.Display + " was refused: " + why);
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        if (!string.Equals(jwt.Subject, id.Value, StringComparison.Ordinal))
        {
            // JWT-SVID profile section 3: sub is the SPIFFE ID.
            throw new SvidRejectedException("the JWT-SVID for " + id + " from " + _client.Display + " was refused: its subject is not its SPIFFE ID");
        }

        var (ns, serviceAccount) = id.KubernetesNames();
        var expires = new DateTimeOffset(DateTime.SpecifyKind(jwt.ValidTo, DateTimeKind.Utc));
        return new WorkloadIdentity(svid.Svid, id.Value, string.IsNullOrEmpty(jwt.Issuer) ? null : jwt.Issuer, jwt.Audiences.ToArray(), ns, serviceAccount, expires, verified: true);
    }

    // A JWT-SVID's issuer is not defined by the profile; its trust domain's keys are the check.
    private TokenValidationParameters Parameters(IReadOnlyList<SecurityKey> keys) =>
        JwtValidation.Parameters(keys, issuer: null, _settings.Audience, _settings.ClockSkew, _time);

    private static string Format(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>The current verdict; <see cref="ValidUntil"/> is the SVID's expiry (exp, no skew), judged on every read.</summary>
    private sealed record Answer(IdentityStatus Status, DateTimeOffset? ValidUntil, string? LastFailure);

    private sealed class SvidRejectedException : Exception
    {
        public SvidRejectedException(string message)
            : base(message)
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.SpiffeJwtSvidAccepted, LogLevel.Information, "JWT-SVID from the SPIFFE Workload API at {Socket} accepted: {SpiffeId}, audience {Audience}, expires {ExpiresAt}")]
        public static partial void SvidAccepted(ILogger logger, string socket, string? spiffeId, string audience, DateTimeOffset? expiresAt);

        [LoggerMessage(EventIds.SpiffeJwtSvidFetchFailed, LogLevel.Warning, "Fetching the JWT-SVID failed: {Reason} (current SVID still valid: {StillValid}; {Failures} failure(s) in a row, retrying with backoff)")]
        public static partial void FetchFailed(ILogger logger, string reason, bool stillValid, int failures);
    }
}
