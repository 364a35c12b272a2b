using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;
using SecretlessProxy.Attestation;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Hosting;
using SecretlessProxy.Identity;
using SecretlessProxy.Injection;
using SecretlessProxy.Listeners;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

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
        if (!TryResolveTarget(context, listener, out var target, out var refusal))
        {
            await RefuseAsync(context, activity, listener.Name, refusal).ConfigureAwait(false);
            return;
        }

        if (context.Features.Get<OriginalDestinationFeature>() is { } originalDestination && request.Host.HasValue)
        {
            target = target with { Destination = await VerifyTransparentHostAsync(originalDestination, target.Destination, request.Host.Host, snapshot.Policies, context.RequestAborted).ConfigureAwait(false) };
        }

        if (target.PathProblem != RequestTargetProblem.None && snapshot.Policies.CanMatchHost(target.Destination.Host, target.Destination.Port))
        {
            // Refused rather than normalised: whatever reading the proxy chose, some upstream reads
            // another, and a credential would go to a path the policy never matched. Traffic to hosts
            // no policy covers carries no credential and passes as sent.
            await RefuseAsync(context, activity, listener.Name, new Refusal(StatusCodes.Status400BadRequest, "ambiguous-path", "Ambiguous request path", RequestPathInspector.Describe(target.PathProblem))).ConfigureAwait(false);
            return;
        }

        var destination = target.Destination;
        if (activity is not null)
        {
            activity.SetTag(ProxyTelemetry.Tags.HttpMethod, destination.Method);
            activity.SetTag(ProxyTelemetry.Tags.ServerAddress, destination.Host);
            activity.SetTag(ProxyTelemetry.Tags.ServerPort, destination.Port);
            activity.SetTag(ProxyTelemetry.Tags.UrlPath, destination.Path);
            activity.SetTag(ProxyTelemetry.Tags.UrlScheme, destination.Scheme);
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
        // A credentialed request the policy matched but that cannot carry the credential is refused
        // below, and counted as a denial like it.
        var unsafeRequest = decision is { Kind: DecisionKind.Allow, Policy: { Injection: not DatabaseLoginInjector } allowed } ? RefusalOfCredentialedRequest(request, allowed, target) : null;
        _metrics.Request(listener.Name, decision.Policy?.Name, unsafeRequest is not null || decision is { Kind: DecisionKind.Allow, Policy.Injection: DatabaseLoginInjector } ? "deny" : decision.Name);
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
                feature = new ForwardingFeature(listener.Name, started, rule: null, credential: null, target.Outbound, passRoutingHeaders: null);
                break;

            case DecisionKind.Allow when decision.Policy!.Injection.Target == InjectionTarget.DatabaseLogin:
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

                if (unsafeRequest is { } refused)
                {
                    Log.Denied(_logger, listener.Name, destination.Method, destination.Host, destination.Port, destination.Path, refused.Detail);
                    activity?.SetTag(ProxyTelemetry.Tags.Reason, refused.Detail);
                    Audit(activity, listener.Name, destination, "deny", refused.Detail, policy, "refused-" + refused.Status, who);
                    await ProblemResponse.WriteAsync(context, refused.Status, refused.Type, refused.Title, refused.Detail, activity?.TraceId.ToString()).ConfigureAwait(false);
                    SetStatus(activity, context);
                    return;
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
                    feature = new ForwardingFeature(listener.Name, started, rule: null, credential: null, target.Outbound, policy.PassRoutingHeaders);
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
                // A signer may buffer the body: its bytes come from the proxy's budget, released below.
                var signingBuffers = policy.Injection is AwsSigV4Injector ? new SigningBufferScope(_state.SigningBuffers) : null;
                feature = new ForwardingFeature(listener.Name, started, (HttpRequestInjector)policy.Injection, lease.Credential, target.Outbound, policy.PassRoutingHeaders, signingBuffers);
                _metrics.Injection(policy.Name, policy.CredentialName, policy.Injection.Kind);
                Audit(activity, listener.Name, destination, decision.Name, decision.Reason, policy, "forwarded", who);
                Log.Allowed(_logger, listener.Name, policy.Name, destination.Method, destination.Host, destination.Port, destination.Path, policy.CredentialName, lease.OutcomeName);
                break;
        }

        context.Features.Set(feature);
        ForwarderError error;
        try
        {
            error = await _forwarder.SendAsync(context, target.Prefix, upstreamClient, _requestConfig, _transformer).ConfigureAwait(false);
        }
        finally
        {
            // The request is over (answered, failed or aborted): a buffered body's bytes go back to
            // the budget as soon as no send still reads them.
            feature.SigningBuffers?.Dispose();
        }

        if (error != ForwarderError.None)
        {
            var forwardException = context.Features.Get<IForwarderErrorFeature>()?.Exception;
            if (SigningBufferRefusedException.Find(forwardException) is { } refused && !context.Response.HasStarted)
            {
                await RefuseSigningBufferAsync(context, activity, listener.Name, decision.Policy?.Name ?? string.Empty, refused).ConfigureAwait(false);
                return;
            }

            if (Injection.AwsSigV4Injector.IsPayloadTooLarge(forwardException) && !context.Response.HasStarted)
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
    /// The body could not be buffered for signing within <c>Limits:SigningBufferBytes</c>; nothing
    /// was sent upstream. 503 with Retry-After while other requests hold the budget, 413 when the
    /// body alone is larger than all of it.
    /// </summary>
    private async Task RefuseSigningBufferAsync(HttpContext context, Activity? activity, string listener, string policy, SigningBufferRefusedException refused)
    {
        _metrics.SigningBufferRefusal(policy, refused.Reason);
        activity?.SetTag(ProxyTelemetry.Tags.Outcome, refused.Reason);
        activity?.SetTag(ProxyTelemetry.Tags.Reason, refused.Message);
        string title;
        int? retryAfter = null;
        if (refused.Reason == SigningBufferRefusedException.BufferFull)
        {
            Log.SigningBufferFull(_logger, listener, policy, refused.Requested, refused.Held, refused.Capacity);
            title = "Signing buffer full";
            // Bodies held for signing are released as their requests end, typically within seconds.
            retryAfter = 1;
        }
        else
        {
            Log.SigningBodyTooLarge(_logger, listener, policy, refused.Requested, refused.Capacity);
            title = "Body too large to sign";
        }

        await ProblemResponse.WriteAsync(context, refused.Status, refused.Reason, title, refused.Message, activity?.TraceId.ToString(), retryAfter).ConfigureAwait(false);
        SetStatus(activity, context);
    }

    /// <summary>
    /// Where the request is really going and exactly what goes on the wire, from what the listener
    /// established and the request target as the app sent it, never from a header the app controls:
    /// the route's upstream, the intercepted tunnel's CONNECT authority (or SNI), the original
    /// destination, or the absolute-form target of a plain forward-proxy request.
    /// </summary>
    private static bool TryResolveTarget(HttpContext context, ListenerDefinition listener, out ResolvedTarget target, out Refusal refusal)
    {
        var request = context.Request;
        target = default;
        refusal = default;
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(rawTarget))
        {
            rawTarget = (request.PathBase + request.Path).ToUriComponent() + request.QueryString.ToUriComponent();
        }

        var absolute = rawTarget[0] != '/';
        if (absolute && rawTarget == "*")
        {
            refusal = new Refusal(StatusCodes.Status400BadRequest, "invalid-request-target", "Invalid request target", "the asterisk-form target (OPTIONS *) is not forwarded");
            return false;
        }

        string rawPathAndQuery;
        Uri? absoluteTarget = null;
        if (absolute)
        {
            // RFC 9112 section 3.2.2. Uri parses the authority only; the path and query are cut from
            // the raw text so that nothing is decoded or dot-resolved before policy sees them.
            var schemeEnd = rawTarget.IndexOf("://", StringComparison.Ordinal);
            if (schemeEnd <= 0 || !Uri.TryCreate(rawTarget, UriKind.Absolute, out absoluteTarget) || string.IsNullOrEmpty(absoluteTarget.Host) ||
                !string.IsNullOrEmpty(absoluteTarget.UserInfo) || absoluteTarget.Scheme is not ("http" or "https"))
            {
                refusal = new Refusal(StatusCodes.Status400BadRequest, "invalid-request-target", "Invalid request target", "the request target is neither a path nor an absolute http(s) URL");
                return false;
            }

            var authorityEnd = rawTarget.AsSpan(schemeEnd + 3).IndexOfAny('/', '?');
            rawPathAndQuery = authorityEnd < 0 ? "/" : rawTarget[(schemeEnd + 3 + authorityEnd)..];
            if (rawPathAndQuery[0] == '?')
            {
                rawPathAndQuery = "/" + rawPathAndQuery;
            }
        }
        else
        {
            rawPathAndQuery = rawTarget;
        }

        var queryAt = rawPathAndQuery.IndexOf('?');
        var rawPath = queryAt < 0 ? rawPathAndQuery : rawPathAndQuery[..queryAt];
        var path = RequestPathInspector.Inspect(rawPath);
        string scheme, host, prefix;
        int port;
        string? outboundHost = null;
        var schemeFromApp = true;
        if (listener.Http == HttpDestination.Upstream)
        {
            if (absolute)
            {
                // The upstream is the operator's; a full URL would let the app name another one to
                // whatever reads the request line downstream.
                refusal = new Refusal(StatusCodes.Status400BadRequest, "absolute-form-refused", "Absolute-form target refused", "a route listener takes a path (origin-form), not a full URL");
                return false;
            }

            var upstream = listener.Upstream!;
            scheme = upstream.Scheme;
            host = upstream.Host;
            port = upstream.Port;
            prefix = listener.UpstreamPrefix;
            schemeFromApp = false;
            // Policy sees the path the upstream will see: the route's base path plus the request path.
            var basePath = upstream.AbsolutePath;
            if (basePath.Length > 1)
            {
                var trimmed = basePath.TrimEnd('/');
                path = path.WithBase(Uri.UnescapeDataString(trimmed));
                rawPathAndQuery = trimmed + rawPathAndQuery;
                prefix = upstream.GetLeftPart(UriPartial.Authority);
            }
        }
        else if (context.Features.Get<TunnelFeature>() is { } tunnel)
        {
            // RFC 9110 section 15.5.20: a request for another authority on this connection is misdirected.
            var named = absoluteTarget is not null ? new HostString(absoluteTarget.Authority) : request.Host;
            if ((absoluteTarget is not null && absoluteTarget.Scheme != "https") ||
                // The tunnel's host is in HostName's canonical form; the request's is compared in it too.
                !(HostName.TryNormalize(named.Host.Trim('[', ']'), out var namedHost) && namedHost == tunnel.Host) || (named.Port is { } p && p != tunnel.Port) ||
                (absoluteTarget is not null && absoluteTarget.Port != tunnel.Port))
            {
                refusal = new Refusal(StatusCodes.Status421MisdirectedRequest, "misdirected-request", "Misdirected request", "this tunnel was opened to " + tunnel.Host + ":" + tunnel.Port + "; the request names another host");
                return false;
            }

            scheme = "https";
            host = tunnel.Host;
            port = tunnel.Port;
            prefix = tunnel.DestinationPrefix;
            if (tunnel.UpstreamAddress is not null)
            {
                // Sent to the original address: the Host (and so the SNI and the name the upstream
                // certificate is verified against) is the tunnel's host, which the SNI named.
                outboundHost = tunnel.Port == 443 ? TunnelFeature.Authority(tunnel.Host) : TunnelFeature.Authority(tunnel.Host) + ":" + tunnel.Port;
            }
        }
        else if (context.Features.Get<OriginalDestinationFeature>() is { } original)
        {
            // Transparent plain HTTP: the connection goes to the original address and port. The Host
            // names the policy host only once it is shown to resolve to that address (see
            // VerifyTransparentHostAsync); until then the destination is the address.
            if (absoluteTarget is not null && (absoluteTarget.Scheme != "http" || !string.Equals(absoluteTarget.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase)))
            {
                refusal = new Refusal(StatusCodes.Status400BadRequest, "invalid-request-target", "Invalid request target", "an absolute-form target must name the request's own Host over http");
                return false;
            }

            scheme = "http";
            host = original.EndPoint.Address.ToString();
            port = original.EndPoint.Port;
            prefix = original.DestinationPrefix;
            outboundHost = request.Host.HasValue ? request.Host.Value : null;
        }
        else if (listener.Http == HttpDestination.Connection)
        {
            refusal = new Refusal(StatusCodes.Status400BadRequest, "not-redirected", "Not a redirected request", "a transparent listener serves connections redirected by iptables");
            return false;
        }
        else
        {
            // RFC 9112 section 3.2.2: a forward proxy receives the absolute-form target.
            if (absoluteTarget is null || absoluteTarget.Scheme != "http")
            {
                refusal = new Refusal(StatusCodes.Status400BadRequest, "not-a-proxy-request", "Not a proxy request", "a forward proxy needs an absolute http:// URL, or CONNECT for https");
                return false;
            }

            scheme = "http";
            host = absoluteTarget.IdnHost;
            port = absoluteTarget.Port;
            prefix = "http://" + absoluteTarget.Authority;
        }

        if (!OutboundRequest.TryMakeUri(prefix, rawPathAndQuery, out var uri))
        {
            refusal = new Refusal(StatusCodes.Status400BadRequest, "invalid-request-target", "Invalid request target", "the request target does not form a valid URL");
            return false;
        }

        var destination = new RequestDestination(scheme, host, port, request.Method, path.Problem == RequestTargetProblem.None ? path.MatchPath : rawPath, schemeFromApp);
        target = new ResolvedTarget(destination, prefix, new OutboundRequest(uri, outboundHost), path.Problem, path.HasEncodedSlash);
        return true;
    }

    /// <summary>
    /// What makes a request unfit to carry this policy's credential although the policy matched it:
    /// an encoded slash the policy does not allow, a method that reflects the request (and so the
    /// credential) back to the app, or what the injector itself refuses (a signed reference to
    /// another resource).
    /// </summary>
    private static Refusal? RefusalOfCredentialedRequest(HttpRequest request, CompiledPolicy policy, in ResolvedTarget target)
    {
        if (target.PathProblem != RequestTargetProblem.None)
        {
            // Refused above wherever a policy covers the host; this holds it should that ever change.
            return new Refusal(StatusCodes.Status400BadRequest, "ambiguous-path", "Ambiguous request path", RequestPathInspector.Describe(target.PathProblem));
        }

        if (target.HasEncodedSlash && !policy.AllowEncodedSlashes)
        {
            return new Refusal(StatusCodes.Status400BadRequest, "ambiguous-path", "Ambiguous request path", RequestPathInspector.Describe(RequestTargetProblem.EncodedSlash) + " (policy '" + policy.Name + "': Match:AllowEncodedSlashes)");
        }

        // RFC 9110 section 9.3.8: TRACE echoes the request as received, credential included; TRACK is IIS's twin.
        if (HttpMethods.IsTrace(request.Method) || string.Equals(request.Method, "TRACK", StringComparison.OrdinalIgnoreCase))
        {
            return new Refusal(StatusCodes.Status405MethodNotAllowed, "method-refused", "Method refused", request.Method + " would echo the injected credential back to the app; it is never sent with a credential (policy '" + policy.Name + "')");
        }

        if (policy.Injection is HttpRequestInjector http && http.RefuseRequest(request, target.Destination, policy.PathPrefix) is { } reason)
        {
            return new Refusal(StatusCodes.Status403Forbidden, "policy-denied", "Denied by policy", "policy '" + policy.Name + "' does not allow this request: " + reason);
        }

        return null;
    }

    /// <summary>
    /// Transparent plain HTTP: the Host header names the destination only when the original
    /// address is one the name resolves to; otherwise the app could send a credential in plaintext to
    /// any address by writing the policy's host name into Host. Asked only for names a policy covers,
    /// and once per connection and name.
    /// </summary>
    private static async ValueTask<RequestDestination> VerifyTransparentHostAsync(OriginalDestinationFeature original, RequestDestination destination, string hostHeader, Policy.PolicySet policies, CancellationToken cancellationToken)
    {
        var name = hostHeader.Trim('[', ']');
        if (System.Net.IPAddress.TryParse(name, out _))
        {
            // An address in Host proves nothing: the destination stays the address connected to.
            return destination;
        }

        if (!policies.CanMatchHost(name, destination.Port))
        {
            // No policy names it: nothing to protect, and no DNS query on behalf of the app.
            return destination;
        }

        return await original.ResolvesToAsync(name, cancellationToken).ConfigureAwait(false) ? destination with { Host = name.ToLowerInvariant() } : destination;
    }

    private async Task RefuseAsync(HttpContext context, Activity? activity, string listenerName, Refusal refusal)
    {
        var request = context.Request;
        activity?.SetTag(ProxyTelemetry.Tags.Decision, "refused");
        activity?.SetTag(ProxyTelemetry.Tags.Reason, refusal.Detail);
        var requestPath = request.Path.HasValue ? request.Path.Value! : "/";
        Audit(activity, listenerName, new RequestDestination(string.Empty, request.Host.Host, request.Host.Port ?? 0, request.Method, requestPath), "refused", refusal.Detail, null, "refused-" + refusal.Status, new Who(context.Features.Get<CallerFeature>()?.Caller ?? Caller.Unknown, null));
        Log.Refused(_logger, listenerName, request.Method, refusal.Detail);
        await ProblemResponse.WriteAsync(context, refusal.Status, refusal.Type, refusal.Title, refusal.Detail, activity?.TraceId.ToString()).ConfigureAwait(false);
        SetStatus(activity, context);
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

    /// <summary>A resolved request: the destination policy matches, the request that goes out, and what its path holds.</summary>
    private readonly record struct ResolvedTarget(RequestDestination Destination, string Prefix, OutboundRequest Outbound, RequestTargetProblem PathProblem, bool HasEncodedSlash);

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

        [LoggerMessage(EventIds.RequestRefused, LogLevel.Information, "Refused a {Method} request on listener {Listener}: {Reason}")]
        public static partial void Refused(ILogger logger, string listener, string method, string reason);

        [LoggerMessage(EventIds.SigningBufferFull, LogLevel.Warning, "Refused a request on listener {Listener} (policy {Policy}) with 503: its body needs {RequestedBytes} bytes to be signed and {HeldBytes} of {CapacityBytes} are held by other requests")]
        public static partial void SigningBufferFull(ILogger logger, string listener, string policy, long requestedBytes, long heldBytes, long capacityBytes);

        [LoggerMessage(EventIds.SigningBodyTooLarge, LogLevel.Information, "Refused a request on listener {Listener} (policy {Policy}) with 413: its body needs {RequestedBytes} bytes or more to be signed, more than Limits:SigningBufferBytes ({CapacityBytes})")]
        public static partial void SigningBodyTooLarge(ILogger logger, string listener, string policy, long requestedBytes, long capacityBytes);

        [LoggerMessage(EventIds.UpstreamFailed, LogLevel.Warning, "Forwarding on listener {Listener} to {Host}:{Port} failed: {Error}")]
        public static partial void UpstreamFailed(ILogger logger, string listener, string host, int port, string error);
    }
}
