using System.Diagnostics;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;
using SecretlessProxy.Injection;
using SecretlessProxy.Policy;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Runtime;

/// <summary>
/// The access sequence every listener runs, written once: who is calling (the attested process,
/// the workload identity), what policy decides for this destination, whether the request is fit to
/// carry a credential, and the credential itself. It answers a grant or a typed refusal and records
/// each access exactly once (one audit record, one count in <c>secretless.proxy.requests</c>, the
/// span's decision and outcome), so a new listener kind only turns a refusal into its protocol's
/// error and a grant into its injection.
/// </summary>
internal sealed partial class AccessPipeline
{
    private readonly ProxyMetrics _metrics;
    private readonly AuditLog _audit;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CredentialUseLog? _uses;

    /// <summary>The audit record's decision for a request refused before any policy was asked.</summary>
    public const string RefusedDecision = "refused";

    /// <param name="uses">Where each access that carried a credential is counted, for <c>GET /inventory</c>.</param>
    public AccessPipeline(ProxyMetrics metrics, AuditLog audit, TimeProvider time, ILogger<AccessPipeline> logger, CredentialUseLog? uses = null)
    {
        _uses = uses;
        _metrics = metrics;
        _audit = audit;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Records a request the listener refused before it could be decided (it could not tell where
    /// the request is going: a malformed target, another authority than its tunnel's) and returns
    /// the refusal. <paramref name="request"/>'s destination is what the request said.
    /// </summary>
    public AccessRefusal Refuse(AccessRequest request, AccessOutcome outcome, string reason)
    {
        var caller = request.Caller is { } feature && !request.OneAccessPerConnection ? feature.Caller : Caller.Unknown;
        Record(request, new Who(caller, null), RefusedDecision, null, outcome, reason, null, null, null, null);
        return new AccessRefusal(outcome, reason);
    }

    /// <summary>
    /// Records a connection the listener refused or relayed blind by its host alone, below HTTP (a
    /// CONNECT tunnel, a redirected connection): nothing was decrypted, so no policy could be
    /// evaluated per request and nothing was injected. <paramref name="passedThrough"/>: relayed blind
    /// (Unmatched PassThrough); otherwise refused with <paramref name="outcome"/>.
    /// </summary>
    public void RecordConnection(AccessRequest request, bool passedThrough, AccessOutcome outcome, string reason)
    {
        var caller = request.Caller is { } feature ? feature.Caller : Caller.Unknown;
        if (request.Activity is { } activity)
        {
            activity.SetTag(ProxyTelemetry.Tags.ServerAddress, request.Destination.Host);
            activity.SetTag(ProxyTelemetry.Tags.ServerPort, request.Destination.Port);
            ProxyTelemetry.TagCaller(activity, caller, null);
        }

        var decision = passedThrough
            ? (request.Listener.Unmatched == UnmatchedBehavior.Observe ? PolicyDecision.NoPolicyObserved : PolicyDecision.NoPolicyPassThrough).Name
            : outcome == AccessOutcome.Denied ? "deny" : RefusedDecision;
        Record(request, new Who(caller, null), decision, null, passedThrough ? AccessOutcome.PassedThrough : outcome, reason, null, null, null, null);
    }

    /// <summary>
    /// Decides one access. A refusal is recorded here; a grant is recorded by the listener through
    /// <see cref="AccessGrant.Complete"/> or <see cref="AccessGrant.Refuse"/> once it knows how it went.
    /// </summary>
    public async ValueTask<AccessDecision> DecideAsync(AccessRequest request, CancellationToken cancellationToken)
    {
        var generation = request.Generation;
        var snapshot = generation.Snapshot;
        var destination = request.Destination;
        var activity = request.Activity;
        Caller caller;
        IdentityStatus? identityStatus = null;
        try
        {
            caller = await AttestAsync(request, snapshot, cancellationToken).ConfigureAwait(false);
            if (generation.Identity is { } workloadIdentity)
            {
                identityStatus = await workloadIdentity.GetAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Cancelled(request, new Who(Caller.Unknown, null), RefusedDecision, null, "the caller and the workload identity were still being checked", null, null);
        }

        var identity = identityStatus?.Identity;
        var who = new Who(caller, identity);
        if (activity is not null)
        {
            ProxyTelemetry.TagCaller(activity, caller, identity);
        }

        if (request.PathAmbiguity is { } ambiguity && snapshot.Policies.CanMatchHost(destination.Host, destination.Port))
        {
            // Refused rather than normalised: whatever reading the proxy chose, some upstream reads
            // another, and a credential would go to a path the policy never matched. Traffic to hosts
            // no policy covers carries no credential and passes as sent.
            return Refuse(request, who, RefusedDecision, null, AccessOutcome.AmbiguousPath, ambiguity);
        }

        var context = new PolicyContext(caller, identity, _time.GetUtcNow());
        var decision = request.LoginCredential is { } login
            // Only the policies for this listener's login decide: a caller refused by the admin
            // login's policies never falls through to a wider policy written for another login.
            ? snapshot.Policies.EvaluateLogin(destination, login, context)
            : snapshot.Policies.Evaluate(destination, request.Listener.Unmatched, context);
        var policy = decision.Policy;

        // No credential is issued without a valid workload identity when one is configured: the app
        // is told the reason (transient, like an unavailable credential), not denied.
        if ((decision.AwaitsIdentity || decision.Kind == DecisionKind.Allow) && identityStatus is { IsValid: false })
        {
            return Refuse(request, who, "deny", policy, AccessOutcome.IdentityUnavailable, "the workload identity is not valid: " + identityStatus.FailureReason);
        }

        switch (decision.Kind)
        {
            case DecisionKind.Deny:
                return Refuse(request, who, decision.Name, policy, AccessOutcome.Denied, decision.Reason);
            case DecisionKind.PassThrough when request.Destination.IsDatabase:
                // A database login cannot go through with nothing injected: an observed denial is
                // refused as enforcing would, and recorded as what it is.
                return Refuse(request, who, decision.Name, policy, AccessOutcome.Denied, decision.Reason);
            case DecisionKind.PassThrough:
                return new AccessGrant(this, request, who, decision, lease: null, null, null);
        }

        var allowed = policy!;
        if (RefusalOfCredentialedAccess(request, allowed) is { } refused)
        {
            return Refuse(request, who, "deny", allowed, refused.Outcome, refused.Reason);
        }

        var credentialName = request.LoginCredential ?? allowed.CredentialName;
        var credentialSource = request.LoginCredential is null
            ? allowed.CredentialSource
            : generation.Credentials.TryGetValue(credentialName, out var entry) ? entry.Definition.Source.Kind : "unknown";
        if (activity is not null)
        {
            activity.SetTag(ProxyTelemetry.Tags.Policy, allowed.Name);
            activity.SetTag(ProxyTelemetry.Tags.CredentialName, credentialName);
            activity.SetTag(ProxyTelemetry.Tags.CredentialSource, credentialSource);
            activity.SetTag(ProxyTelemetry.Tags.Injection, allowed.Injection.Kind);
        }

        if (allowed.Injection.Target == InjectionTarget.TlsClientCertificate)
        {
            // The certificate is the credential: the listener's TLS client presents it in the handshake.
            return new AccessGrant(this, request, who, decision, lease: null, credentialName, credentialSource);
        }

        CredentialLease lease;
        try
        {
            lease = request.LoginCredential is not null && generation.Credentials.TryGetValue(credentialName, out var loginEntry)
                // A login must not start with a value that expires before its handshake can end (a
                // token past a failed refresh): such a value is fetched anew first.
                ? await CoveringLease.GetAsync(loginEntry, request.Listener.Limits.HandshakeTimeout, _time, cancellationToken).ConfigureAwait(false)
                : await generation.GetCredentialAsync(credentialName, cancellationToken).ConfigureAwait(false);
        }
        catch (CredentialUnavailableException ex)
        {
            return Refuse(request, who, decision.Name, allowed, AccessOutcome.CredentialUnavailable, "policy '" + allowed.Name + "' needs credential '" + ex.CredentialName + "', which is unavailable: " + ex.Reason, credentialName, credentialSource);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The app gave up (or the listener's deadline ran out) while the credential was being
            // fetched; the fetch goes on for others.
            return Cancelled(request, who, decision.Name, allowed, "credential '" + credentialName + "' was still being fetched", credentialName, credentialSource);
        }

        activity?.SetTag(ProxyTelemetry.Tags.CredentialCache, lease.OutcomeName);
        var credential = lease.Credential;
        if (credential.ExpiresAt is { } expires && expires <= _time.GetUtcNow())
        {
            // The cache never hands out an expired value; this guards the moment between its check and the wire.
            return Refuse(request, who, decision.Name, allowed, AccessOutcome.CredentialUnavailable, "credential '" + credentialName + "' expired before it could be used", credentialName, credentialSource);
        }

        if (request.LoginCredential is not null && !CoveringLease.Covers(credential, request.Listener.Limits.HandshakeTimeout, _time))
        {
            return Refuse(request, who, decision.Name, allowed, AccessOutcome.CredentialUnavailable, "credential '" + credentialName + "' expires within the listener's HandshakeTimeout (" + request.Listener.Limits.HandshakeTimeout.TotalSeconds + " s) even when fetched anew: a login could outlive it", credentialName, credentialSource);
        }

        if (allowed.Injection.Target == InjectionTarget.DatabaseLogin && credential.Username is not { Length: > 0 })
        {
            return Refuse(request, who, decision.Name, allowed, AccessOutcome.CredentialUnavailable, "credential '" + credentialName + "' has no user name to log in with", credentialName, credentialSource);
        }

        return new AccessGrant(this, request, who, decision, lease, credentialName, credentialSource);
    }

    /// <summary>
    /// What makes an allowed access unfit for this policy's credential: an injection the listener
    /// cannot perform (so no injector is handed something it cannot act on), an ambiguous path or
    /// an encoded slash the policy does not allow, a method that reflects the request (and so the
    /// credential) back to the app, or what the injector itself refuses.
    /// </summary>
    private static (AccessOutcome Outcome, string Reason)? RefusalOfCredentialedAccess(AccessRequest request, CompiledPolicy policy)
    {
        var target = policy.Injection.Target;
        if (!request.Injects.Contains(target))
        {
            // Sending the request on would add nothing and let the app reach the host on a policy
            // never written for this kind of listener.
            return (AccessOutcome.Denied, target switch
            {
                InjectionTarget.DatabaseLogin => "policy '" + policy.Name + "' authorizes database connections only",
                _ when request.Injects.Contains(InjectionTarget.DatabaseLogin) => "policy '" + policy.Name + "' injects " + policy.Injection.Kind + " into HTTP requests; a database connection needs a policy with Inject DatabaseLogin",
                _ => "policy '" + policy.Name + "' injects " + policy.Injection.Kind + ", which this listener cannot present",
            });
        }

        if (request.PathAmbiguity is { } ambiguity)
        {
            // Refused before the decision wherever a policy covers the host; this holds should that ever change.
            return (AccessOutcome.AmbiguousPath, ambiguity);
        }

        if (request.EncodedSlash is { } encodedSlash && !policy.AllowEncodedSlashes)
        {
            return (AccessOutcome.AmbiguousPath, encodedSlash + " (policy '" + policy.Name + "': Match:AllowEncodedSlashes)");
        }

        // RFC 9110 section 9.3.8: TRACE echoes the request as received, credential included; TRACK is IIS's twin.
        var method = request.Destination.Method;
        if (string.Equals(method, "TRACE", StringComparison.OrdinalIgnoreCase) || string.Equals(method, "TRACK", StringComparison.OrdinalIgnoreCase))
        {
            return (AccessOutcome.MethodRefused, method + " would echo the injected credential back to the app; it is never sent with a credential (policy '" + policy.Name + "')");
        }

        if (policy.Injection is HttpRequestInjector http && request.HttpRequest is { } httpRequest &&
            http.RefuseRequest(httpRequest, request.Destination, policy.PathPrefix) is { } reason)
        {
            return (AccessOutcome.Denied, "policy '" + policy.Name + "' does not allow this request: " + reason);
        }

        return null;
    }

    /// <summary>The caller now: read once per access, which re-checks a connection's attestation while a policy has a Caller condition.</summary>
    private static async ValueTask<Caller> AttestAsync(AccessRequest request, ProxySnapshot snapshot, CancellationToken cancellationToken)
    {
        if (request.Caller is not { } feature)
        {
            return Caller.Unknown;
        }

        if (!request.OneAccessPerConnection)
        {
            // A first read waits for the connection's attestation, whose scan runs off the pool.
            return await feature.GetCallerAsync().ConfigureAwait(false);
        }

        // Attesting scans /proc (milliseconds) and only a Caller condition or the audit trail reads
        // it; a pool opening connections should not pay for it otherwise. Re-checks read /proc
        // synchronously: off the I/O thread, which with inline completions serves every socket.
        return snapshot.Policies.UsesCaller || snapshot.Audit.Sink != AuditSink.None
            ? await Task.Run(() => feature.GetCallerAsync().AsTask(), cancellationToken).ConfigureAwait(false)
            : Caller.Unknown;
    }

    private AccessRefusal Cancelled(AccessRequest request, in Who who, string decision, CompiledPolicy? policy, string pending, string? credentialName, string? credentialSource) =>
        request.ClientClosed.IsCancellationRequested
            ? Refuse(request, who, decision, policy, AccessOutcome.ClientAborted, "the app closed the connection while " + pending, credentialName, credentialSource)
            : Refuse(request, who, decision, policy, AccessOutcome.HandshakeTimeout, pending + " when the listener's HandshakeTimeout ran out", credentialName, credentialSource);

    private AccessRefusal Refuse(AccessRequest request, in Who who, string decision, CompiledPolicy? policy, AccessOutcome outcome, string reason, string? credentialName = null, string? credentialSource = null)
    {
        Record(request, who, decision, policy, outcome, reason, credentialName, credentialSource, null, null);
        return new AccessRefusal(outcome, reason);
    }

    /// <summary>
    /// The one place an access is recorded: the request count, the injection count, the audit record,
    /// the span's decision and outcome (with the decision as an event, the same facts as the record)
    /// and the log line.
    /// </summary>
    internal void Record(AccessRequest request, in Who who, string decision, CompiledPolicy? policy, AccessOutcome outcome, string reason, string? credentialName, string? credentialSource, string? cacheOutcome, string? databaseUser)
    {
        var listener = request.Listener.Name;
        var destination = request.Destination;
        var activity = request.Activity;
        _metrics.Request(listener, policy?.Name, decision, outcome);
        if (outcome is AccessOutcome.Forwarded or AccessOutcome.Connected && policy is not null)
        {
            _metrics.Injection(policy.Name, credentialName ?? policy.CredentialName, policy.Injection.Kind);
        }

        // A denial names the policy whose condition failed, but no credential was chosen for it.
        var allowed = decision is "allow" or PolicyDecision.WouldAllow;
        var now = _time.GetUtcNow();
        if (allowed && outcome is AccessOutcome.Forwarded or AccessOutcome.Connected && policy is not null && credentialName is not null)
        {
            _uses?.Record(credentialName, policy.Name, listener, destination, who.Caller, who.Identity?.Subject, now);
        }

        _audit.Record(new AuditRecord(
            now, listener, decision, reason, policy?.Name, allowed ? credentialName : null, allowed ? credentialSource : null, outcome,
            destination.Scheme, destination.Host, destination.Port, destination.Method, destination.Path, activity?.TraceId.ToString(),
            who.Caller, who.Identity?.Subject, databaseUser));
        if (activity is not null)
        {
            activity.SetTag(ProxyTelemetry.Tags.Decision, decision);
            if (policy is not null)
            {
                activity.SetTag(ProxyTelemetry.Tags.Policy, policy.Name);
            }

            TagOutcome(activity, outcome, reason);
            ProxyTelemetry.AddDecisionEvent(activity, decision, reason, outcome);
        }

        LogAccess(request, policy, outcome, reason, credentialName, cacheOutcome, databaseUser);
    }

    /// <summary>The span's outcome; a refusal's reason, and the error status for a failure (not for a request refused on purpose).</summary>
    internal static void TagOutcome(Activity activity, AccessOutcome outcome, string reason)
    {
        activity.SetTag(ProxyTelemetry.Tags.Outcome, outcome.ToWireName());
        if (outcome.IsSuccess())
        {
            return;
        }

        activity.SetTag(ProxyTelemetry.Tags.Reason, reason);
        if (outcome == AccessOutcome.CredentialUnavailable)
        {
            activity.AddEvent(new ActivityEvent("secretless.credential.unavailable", tags: new ActivityTagsCollection { [ProxyTelemetry.Tags.Reason] = reason }));
        }

        if (outcome.IsFailure())
        {
            activity.SetStatus(ActivityStatusCode.Error, outcome.ToWireName());
        }
    }

    private void LogAccess(AccessRequest request, CompiledPolicy? policy, AccessOutcome outcome, string reason, string? credentialName, string? cacheOutcome, string? databaseUser)
    {
        var listener = request.Listener.Name;
        var d = request.Destination;
        if (outcome == AccessOutcome.ClientAborted)
        {
            // Nobody to tell and nothing an operator can act on; the record and the span keep it.
            return;
        }

        if (d.IsDatabase)
        {
            if (outcome == AccessOutcome.Connected)
            {
                Log.Connected(_logger, listener, d.Host, d.Port, d.Path.TrimStart('/'), databaseUser ?? string.Empty, policy?.Name ?? string.Empty, credentialName ?? string.Empty);
            }
            else
            {
                Log.ConnectionRefused(_logger, listener, d.Host, d.Port, d.Path, outcome.ToWireName(), reason);
            }

            return;
        }

        switch (outcome)
        {
            case AccessOutcome.Forwarded:
                Log.Allowed(_logger, listener, policy?.Name ?? string.Empty, d.Method, d.Host, d.Port, d.Path, credentialName ?? string.Empty, cacheOutcome ?? "none");
                break;
            case AccessOutcome.PassedThrough:
                Log.PassedThrough(_logger, listener, d.Method, d.Host, d.Port, d.Path);
                break;
            case AccessOutcome.IdentityUnavailable:
                Log.IdentityUnavailable(_logger, listener, policy?.Name, reason);
                break;
            case AccessOutcome.CredentialUnavailable or AccessOutcome.HandshakeTimeout:
                Log.CredentialUnavailable(_logger, listener, policy?.Name ?? string.Empty, credentialName ?? string.Empty, reason);
                break;
            case AccessOutcome.Denied or AccessOutcome.MethodRefused or AccessOutcome.AmbiguousPath when policy is not null || outcome == AccessOutcome.Denied:
                Log.Denied(_logger, listener, d.Method, d.Host, d.Port, d.Path, reason);
                break;
            default:
                Log.Refused(_logger, listener, d.Method, outcome.ToWireName(), reason);
                break;
        }
    }

    /// <summary>Who is calling, for the record: the attested process and the workload identity.</summary>
    internal readonly record struct Who(Caller Caller, WorkloadIdentity? Identity);

    private static partial class Log
    {
        [LoggerMessage(EventIds.RequestAllowed, LogLevel.Debug, "Allowed {Method} {Host}:{Port}{Path} on listener {Listener} by policy {Policy} with credential {CredentialName} ({CacheOutcome})")]
        public static partial void Allowed(ILogger logger, string listener, string policy, string method, string host, int port, string path, string credentialName, string cacheOutcome);

        [LoggerMessage(EventIds.RequestDenied, LogLevel.Information, "Denied {Method} {Host}:{Port}{Path} on listener {Listener}: {Reason}")]
        public static partial void Denied(ILogger logger, string listener, string method, string host, int port, string path, string reason);

        [LoggerMessage(EventIds.RequestPassedThrough, LogLevel.Debug, "Passed through {Method} {Host}:{Port}{Path} on listener {Listener} with nothing injected")]
        public static partial void PassedThrough(ILogger logger, string listener, string method, string host, int port, string path);

        [LoggerMessage(EventIds.CredentialUnavailable, LogLevel.Warning, "Refused a request on listener {Listener} for policy {Policy}: credential {CredentialName} unavailable: {Reason}")]
        public static partial void CredentialUnavailable(ILogger logger, string listener, string policy, string credentialName, string reason);

        [LoggerMessage(EventIds.IdentityUnavailableForRequest, LogLevel.Warning, "Refused a request on listener {Listener} (policy {Policy}): no valid workload identity: {Reason}")]
        public static partial void IdentityUnavailable(ILogger logger, string listener, string? policy, string reason);

        [LoggerMessage(EventIds.RequestRefused, LogLevel.Information, "Refused a {Method} request on listener {Listener} ({Outcome}): {Reason}")]
        public static partial void Refused(ILogger logger, string listener, string method, string outcome, string reason);

        [LoggerMessage(EventIds.DatabaseConnected, LogLevel.Debug, "Connected listener {Listener} to {Host}:{Port} database {Database} as {User} by policy {Policy} with credential {CredentialName}")]
        public static partial void Connected(ILogger logger, string listener, string host, int port, string database, string user, string policy, string credentialName);

        [LoggerMessage(EventIds.DatabaseConnectionRefused, LogLevel.Information, "Refused a connection on listener {Listener} to {Host}:{Port}{Path} ({Outcome}): {Reason}")]
        public static partial void ConnectionRefused(ILogger logger, string listener, string host, int port, string path, string outcome, string reason);
    }
}
