using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using SecretlessProxy.Credentials;
using SecretlessProxy.Hosting;
using SecretlessProxy.Identity;
using SecretlessProxy.Injection;
using SecretlessProxy.Listeners;
using SecretlessProxy.Policy;
using SecretlessProxy.Telemetry;
using Yarp.ReverseProxy.Forwarder;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// The request path: destination from the listener, decision from policy, credential from the cache,
/// injection in the transformer, forwarding by YARP's <see cref="IHttpForwarder"/>, and one span
/// recording the outcome. Called directly rather than through YARP's routing, which this proxy does
/// not need and which costs CPU per request.
/// </summary>
internal sealed partial class ProxyRequestHandler
{
    private readonly ProxyState _state;
    private readonly IHttpForwarder _forwarder;
    private readonly HttpMessageInvoker _upstreamClient;
    private readonly ClientCertificateClients _certificateClients;
    private readonly CredentialInjectingTransformer _transformer;
    private readonly ForwarderRequestConfig _requestConfig;
    private readonly ProxyMetrics _metrics;
    private readonly AuditLog _audit;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public ProxyRequestHandler(ProxyState state, IHttpForwarder forwarder, HttpMessageInvoker upstreamClient, ClientCertificateClients certificateClients, ProxyMetrics metrics, AuditLog audit, TimeProvider time, ILogger<ProxyRequestHandler> logger)
    {
        _certificateClients = certificateClients;
        _audit = audit;
        _time = time;
        _state = state;
        _forwarder = forwarder;
        _upstreamClient = upstreamClient;
        _metrics = metrics;
        _transformer = new CredentialInjectingTransformer(metrics, logger);
        _logger = logger;
        _requestConfig = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromSeconds(100) };
    }

    public async Task HandleAsync(HttpContext context, string listenerName)
    {
        var generation = _state.Current;
        var snapshot = generation.Snapshot;
        if (!snapshot.Listeners.TryGetValue(listenerName, out var listener))
        {
            // A listener removed from the configuration while its socket still accepts: fail closed.
            await ProblemResponse.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "listener-unavailable", "Listener unavailable", "listener '" + listenerName + "' is not configured").ConfigureAwait(false);
            return;
        }

        var started = Stopwatch.GetTimestamp();
        using var activity = ProxyTelemetry.StartRequest(listener.Name);
        var request = context.Request;
        if (!TryResolveDestination(context, listener, out var destination, out var destinationPrefix, out var refusal))
        {
            activity?.SetTag(ProxyTelemetry.Tags.Decision, "refused");
            var requestPath = request.Path.HasValue ? request.Path.Value! : "/";
            Audit(activity, listener.Name, new RequestDestination(string.Empty, request.Host.Host, request.Host.Port ?? 0, request.Method, requestPath), "refused", refusal.Title, null, "refused-" + refusal.Status, new Who(context.Features.Get<CallerFeature>()?.Caller ?? Caller.Unknown, null));
            await ProblemResponse.WriteAsync(context, refusal.Status, refusal.Type, refusal.Title, refusal.Detail, activity?.TraceId.ToString()).ConfigureAwait(false);
            SetStatus(activity, context);
            return;
        }

        if (activity is not null)
        {
            activity.SetTag(ProxyTelemetry.Tags.HttpMethod, destination.Method);
            activity.SetTag(ProxyTelemetry.Tags.ServerAddress, destination.Host);
            activity.SetTag(ProxyTelemetry.Tags.ServerPort, destination.Port);
            activity.SetTag(ProxyTelemetry.Tags.UrlPath, destination.Path);
            if (listener.QueryRecording is { } recording && request.QueryString.HasValue)
            {
                activity.SetTag(ProxyTelemetry.Tags.UrlQuery, recording.Redact(request.QueryString.Value!));
            }
        }

        var caller = context.Features.Get<CallerFeature>()?.Caller ?? Caller.Unknown;
        IdentityStatus? identityStatus = null;
        if (generation.Identity is { } workloadIdentity)
        {
            identityStatus = await workloadIdentity.GetAsync(context.RequestAborted).ConfigureAwait(false);
        }

        var who = new Who(caller, identityStatus?.Identity);
        var decision = snapshot.Policies.Evaluate(destination, listener.Unmatched, new PolicyContext(caller, identityStatus?.Identity, _time.GetUtcNow()));
        activity?.SetTag(ProxyTelemetry.Tags.Decision, decision.Name);
        if (activity is not null)
        {
            ProxyTelemetry.TagCaller(activity, caller, identityStatus?.Identity);
        }

        // No credential is issued without a valid workload identity when one is configured: the app
        // sees 503 with the reason (transient, like an unavailable credential), not a 403.
        if ((decision.AwaitsIdentity || decision.Kind == DecisionKind.Allow) && identityStatus is { IsValid: false })
        {
            var reason = "the workload identity is not valid: " + identityStatus.FailureReason;
            _metrics.Request(listener.Name, decision.Policy?.Name, "identity-unavailable");
            Log.IdentityUnavailable(_logger, listener.Name, decision.Policy?.Name, identityStatus.FailureReason!);
            Audit(activity, listener.Name, destination, "deny", reason, decision.Policy, "identity-unavailable", who);
            activity?.SetTag(ProxyTelemetry.Tags.Outcome, "identity-unavailable");
            await ProblemResponse.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "identity-unavailable", "Workload identity unavailable", reason, activity?.TraceId.ToString()).ConfigureAwait(false);
            SetStatus(activity, context);
            return;
        }

        // A database-only policy that matched an HTTP request refuses it below: counted as a denial.
        _metrics.Request(listener.Name, decision.Policy?.Name, decision is { Kind: DecisionKind.Allow, Policy.Injection: DatabaseLoginInjector } ? "deny" : decision.Name);
        ForwardingFeature feature;
        var upstreamClient = _upstreamClient;

        switch (decision.Kind)
        {
            case DecisionKind.Deny:
                Log.Denied(_logger, listener.Name, destination.Method, destination.Host, destination.Port, destination.Path, decision.Reason);
                if (decision.Policy is not null)
                {
                    activity?.SetTag(ProxyTelemetry.Tags.Policy, decision.Policy.Name);
                }

                Audit(activity, listener.Name, destination, decision.Name, decision.Reason, decision.Policy, "denied", who);
                activity?.SetTag(ProxyTelemetry.Tags.Reason, decision.Reason);
                await ProblemResponse.WriteAsync(context, StatusCodes.Status403Forbidden, "policy-denied", "Denied by policy", decision.Reason, activity?.TraceId.ToString()).ConfigureAwait(false);
                SetStatus(activity, context);
                return;

            case DecisionKind.PassThrough:
                Log.PassedThrough(_logger, listener.Name, destination.Method, destination.Host, destination.Port, destination.Path);
                Audit(activity, listener.Name, destination, decision.Name, decision.Reason, null, "forwarded", who);
                feature = new ForwardingFeature(listener.Name, started, rule: null, credential: null);
                break;

            case DecisionKind.Allow when decision.Policy!.Injection is Injection.DatabaseLoginInjector:
                // Such a policy names no HTTP injection; sending the request on would add nothing and
                // let the app reach the host on a policy never written for HTTP.
                var reason = "policy '" + decision.Policy.Name + "' authorizes database connections only";
                Log.Denied(_logger, listener.Name, destination.Method, destination.Host, destination.Port, destination.Path, reason);
                activity?.SetTag(ProxyTelemetry.Tags.Policy, decision.Policy.Name);
                Audit(activity, listener.Name, destination, "deny", reason, decision.Policy, "denied", who);
                await ProblemResponse.WriteAsync(context, StatusCodes.Status403Forbidden, "policy-denied", "Denied by policy", reason, activity?.TraceId.ToString()).ConfigureAwait(false);
                SetStatus(activity, context);
                return;

            default:
                var policy = decision.Policy!;
                if (activity is not null)
                {
                    activity.SetTag(ProxyTelemetry.Tags.Policy, policy.Name);
                    activity.SetTag(ProxyTelemetry.Tags.CredentialName, policy.CredentialName);
                    activity.SetTag(ProxyTelemetry.Tags.CredentialSource, policy.CredentialSource);
                    activity.SetTag(ProxyTelemetry.Tags.Injection, policy.Injection.Kind);
                }

                if (policy.Injection is ClientCertificateInjector certificateRule)
                {
                    // The certificate goes in the TLS handshake of the policy's own client's connections.
                    var certificateClient = UseClientCertificate(policy, certificateRule, destination, activity, out var unavailable);
                    if (certificateClient is null)
                    {
                        Log.CredentialUnavailable(_logger, listener.Name, policy.Name, policy.CredentialName, unavailable.Reason);
                        Audit(activity, listener.Name, destination, decision.Name, decision.Reason, policy, "credential-unavailable", who);
                        activity?.SetTag(ProxyTelemetry.Tags.Outcome, "credential-unavailable");
                        activity?.AddEvent(new ActivityEvent("secretless.credential.unavailable", tags: new ActivityTagsCollection { [ProxyTelemetry.Tags.Reason] = unavailable.Reason }));
                        await ProblemResponse.WriteAsync(context, unavailable.Status, unavailable.Type, unavailable.Title, unavailable.Detail, activity?.TraceId.ToString()).ConfigureAwait(false);
                        SetStatus(activity, context);
                        return;
                    }

                    upstreamClient = certificateClient.Invoker;
                    feature = new ForwardingFeature(listener.Name, started, rule: null, credential: null);
                    _metrics.Injection(policy.Name, policy.CredentialName, policy.Injection.Kind);
                    Audit(activity, listener.Name, destination, decision.Name, decision.Reason, policy, "forwarded", who);
                    Log.Allowed(_logger, listener.Name, policy.Name, destination.Method, destination.Host, destination.Port, destination.Path, policy.CredentialName, policy.Injection.Kind);
                    break;
                }

                CredentialLease lease;
                try
                {
                    lease = await generation.GetCredentialAsync(policy.CredentialName, context.RequestAborted).ConfigureAwait(false);
                }
                catch (CredentialUnavailableException ex)
                {
                    Log.CredentialUnavailable(_logger, listener.Name, policy.Name, ex.CredentialName, ex.Reason);
                    Audit(activity, listener.Name, destination, decision.Name, decision.Reason, policy, "credential-unavailable", who);
                    activity?.SetTag(ProxyTelemetry.Tags.Outcome, "credential-unavailable");
                    activity?.AddEvent(new ActivityEvent("secretless.credential.unavailable", tags: new ActivityTagsCollection { [ProxyTelemetry.Tags.Reason] = ex.Reason }));
                    await ProblemResponse.WriteAsync(
                        context,
                        StatusCodes.Status503ServiceUnavailable,
                        "credential-unavailable",
                        "Credential unavailable",
                        "policy '" + policy.Name + "' needs credential '" + ex.CredentialName + "', which is unavailable: " + ex.Reason,
                        activity?.TraceId.ToString()).ConfigureAwait(false);
                    SetStatus(activity, context);
                    return;
                }
                catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                {
                    // The app gave up while the credential was being fetched; the fetch goes on for others.
                    activity?.SetTag(ProxyTelemetry.Tags.Outcome, "client-aborted");
                    return;
                }

                activity?.SetTag(ProxyTelemetry.Tags.CredentialCache, lease.OutcomeName);
                feature = new ForwardingFeature(listener.Name, started, policy.Injection, lease.Credential);
                _metrics.Injection(policy.Name, policy.CredentialName, policy.Injection.Kind);
                Audit(activity, listener.Name, destination, decision.Name, decision.Reason, policy, "forwarded", who);
                Log.Allowed(_logger, listener.Name, policy.Name, destination.Method, destination.Host, destination.Port, destination.Path, policy.CredentialName, lease.OutcomeName);
                break;
        }

        context.Features.Set(feature);
        var error = await _forwarder.SendAsync(context, destinationPrefix, upstreamClient, _requestConfig, _transformer).ConfigureAwait(false);
        if (error != ForwarderError.None)
        {
            if (Injection.AwsSigV4Injector.IsPayloadTooLarge(context.Features.Get<IForwarderErrorFeature>()?.Exception) && !context.Response.HasStarted)
            {
                // The signer refused to buffer the body (AwsSigV4 MaxBodyBytes); nothing was sent upstream.
                activity?.SetTag(ProxyTelemetry.Tags.Outcome, "payload-too-large");
                await ProblemResponse.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, "payload-too-large", "Payload too large", "the request body is larger than the policy's AwsSigV4 MaxBodyBytes, the most the proxy buffers to sign it", activity?.TraceId.ToString()).ConfigureAwait(false);
                SetStatus(activity, context);
                return;
            }

            var reason = error.ToString();
            Log.UpstreamFailed(_logger, listener.Name, destination.Host, destination.Port, reason);
            _metrics.UpstreamError(listener.Name, reason);
            activity?.SetTag(ProxyTelemetry.Tags.Outcome, "upstream-error");
            activity?.SetStatus(ActivityStatusCode.Error, reason);
            if (error is not (ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled))
            {
                var status = context.Response.StatusCode >= 500 ? context.Response.StatusCode : StatusCodes.Status502BadGateway;
                await ProblemResponse.WriteAsync(context, status, "upstream-failed", "Upstream request failed", "forwarding to " + destination.Host + ":" + destination.Port + " failed (" + reason + ")", activity?.TraceId.ToString()).ConfigureAwait(false);
            }
        }

        SetStatus(activity, context);
    }

    /// <summary>
    /// Where the request is really going, from what the listener established and never from a header
    /// the app controls: the route's upstream, the intercepted tunnel's CONNECT authority, or the
    /// absolute-form target of a plain forward-proxy request.
    /// </summary>
    private static bool TryResolveDestination(HttpContext context, ListenerDefinition listener, out RequestDestination destination, out string prefix, out Refusal refusal)
    {
        var request = context.Request;
        var path = request.Path.HasValue ? request.Path.Value! : "/";
        refusal = default;
        if (listener.Mode == ListenerMode.Route)
        {
            var upstream = listener.Upstream!;
            // Policy sees the path the upstream will see: the route's base path plus the request path.
            var basePath = upstream.AbsolutePath;
            destination = new RequestDestination(upstream.Scheme, upstream.Host, upstream.Port, request.Method, basePath.Length <= 1 ? path : basePath.TrimEnd('/') + path);
            prefix = listener.UpstreamPrefix;
            return true;
        }

        if (context.Features.Get<TunnelFeature>() is { } tunnel)
        {
            // RFC 9110 section 15.5.20: a request for another authority on this connection is misdirected.
            var host = request.Host;
            if (!string.Equals(host.Host.Trim('[', ']'), tunnel.Host, StringComparison.OrdinalIgnoreCase) || (host.Port is { } p && p != tunnel.Port))
            {
                destination = default;
                prefix = string.Empty;
                refusal = new Refusal(StatusCodes.Status421MisdirectedRequest, "misdirected-request", "Misdirected request", "this tunnel was opened to " + tunnel.Host + ":" + tunnel.Port + "; the request names another host");
                return false;
            }

            destination = new RequestDestination("https", tunnel.Host, tunnel.Port, request.Method, path);
            prefix = tunnel.DestinationPrefix;
            return true;
        }

        if (context.Features.Get<OriginalDestinationFeature>() is { } original)
        {
            // Transparent plain HTTP: the Host names the policy host (an HTTP/1.0 request without one
            // is decided by the address), the connection goes to the original address and port.
            var hostName = request.Host.HasValue ? request.Host.Host.Trim('[', ']') : original.EndPoint.Address.ToString();
            destination = new RequestDestination("http", hostName, original.EndPoint.Port, request.Method, path);
            prefix = original.DestinationPrefix;
            return true;
        }

        if (listener.Mode == ListenerMode.Transparent)
        {
            destination = default;
            prefix = string.Empty;
            refusal = new Refusal(StatusCodes.Status400BadRequest, "not-redirected", "Not a redirected request", "a transparent listener serves connections redirected by iptables");
            return false;
        }

        // RFC 9112 section 3.2.2: a forward proxy receives the absolute-form target.
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (rawTarget is null || !Uri.TryCreate(rawTarget, UriKind.Absolute, out var target) || target.Scheme != "http" || string.IsNullOrEmpty(target.Host) || !string.IsNullOrEmpty(target.UserInfo))
        {
            destination = default;
            prefix = string.Empty;
            refusal = new Refusal(StatusCodes.Status400BadRequest, "not-a-proxy-request", "Not a proxy request", "a forward proxy needs an absolute http:// URL, or CONNECT for https");
            return false;
        }

        destination = new RequestDestination("http", target.IdnHost, target.Port, request.Method, path);
        prefix = "http://" + target.Authority;
        return true;
    }

    /// <summary>
    /// The client whose connections present the policy's certificate, or null (with the 503 to send)
    /// when it cannot be presented: the request would go in cleartext (a certificate only exists in
    /// TLS, and sending the request without it would be a silent downgrade), or there is no valid
    /// certificate now (expired, unreadable).
    /// </summary>
    private ClientCertificateClients.Client? UseClientCertificate(CompiledPolicy policy, ClientCertificateInjector rule, in RequestDestination destination, Activity? activity, out Refusal unavailable)
    {
        unavailable = default;
        if (!string.Equals(destination.Scheme, "https", StringComparison.Ordinal))
        {
            var detail = "policy '" + policy.Name + "' presents a TLS client certificate, which needs an https upstream; this request would go to " + destination.Scheme + "://" + destination.Host + ":" + destination.Port + " without TLS";
            unavailable = new Refusal(StatusCodes.Status503ServiceUnavailable, "client-certificate-needs-https", "Credential cannot be presented", detail, "the upstream is not https");
            return null;
        }

        var client = _certificateClients.For(rule);
        if (!client.Certificate.TryGetCurrent(out var certificate, out var reason))
        {
            var detail = "policy '" + policy.Name + "' needs the client certificate '" + policy.CredentialName + "', which is unavailable: " + reason;
            unavailable = new Refusal(StatusCodes.Status503ServiceUnavailable, "credential-unavailable", "Credential unavailable", detail, reason);
            return null;
        }

        if (activity is not null)
        {
            activity.SetTag(ProxyTelemetry.Tags.ClientCertificateSubject, certificate!.Subject);
            activity.SetTag(ProxyTelemetry.Tags.ClientCertificateThumbprint, certificate.Thumbprint);
        }

        return client;
    }

    /// <summary>One audit record per decision, and the same facts as an event on the request span.</summary>
    private void Audit(Activity? activity, string listener, in RequestDestination destination, string decision, string reason, CompiledPolicy? policy, string outcome, in Who who)
    {
        // A denial names the policy whose condition failed, but no credential was chosen for it.
        var allowed = decision is "allow";
        var record = new AuditRecord(
            _time.GetUtcNow(), listener, decision, reason, policy?.Name, allowed ? policy?.CredentialName : null,
            allowed ? policy?.CredentialSource : null, outcome,
            destination.Scheme, destination.Host, destination.Port, destination.Method, destination.Path, activity?.TraceId.ToString(),
            who.Caller, who.Identity?.Subject);
        _audit.Record(record);
        ProxyTelemetry.AddDecisionEvent(activity, decision, reason, outcome);
    }

    private readonly record struct Refusal(int Status, string Type, string Title, string Detail, string Reason = "");

    /// <summary>Who is calling, for the audit record: the attested process and the workload identity.</summary>
    private readonly record struct Who(Caller Caller, WorkloadIdentity? Identity);

    private static void SetStatus(Activity? activity, HttpContext context) =>
        activity?.SetTag(ProxyTelemetry.Tags.StatusCode, context.Response.StatusCode);

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

        [LoggerMessage(EventIds.UpstreamFailed, LogLevel.Warning, "Forwarding on listener {Listener} to {Host}:{Port} failed: {Error}")]
        public static partial void UpstreamFailed(ILogger logger, string listener, string host, int port, string error);
    }
}
