using System.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;
using SecretlessProxy.Attestation;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Injection;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// The request path of every HTTP listener (Route, Forward, Transparent): destination from the
/// listener, decision and credential from the <see cref="AccessPipeline"/>, injection in the
/// transformer, forwarding by YARP's <see cref="IHttpForwarder"/>. Called directly rather than
/// through YARP's routing, which this proxy does not need and which costs CPU per request.
/// </summary>
internal sealed partial class ProxyRequestHandler
{
    /// <summary>What an HTTP listener can inject: into the request, or a client certificate into the upstream TLS handshake.</summary>

    private readonly ProxyState _state;
    private readonly IHttpForwarder _forwarder;
    private readonly HttpMessageInvoker _upstreamClient;
    private readonly ClientCertificateClients _certificateClients;
    private readonly CredentialInjectingTransformer _transformer;
    private readonly ForwarderRequestConfig _requestConfig;
    private readonly ProxyMetrics _metrics;
    private readonly AccessPipeline _pipeline;
    private readonly ILogger _logger;

    public ProxyRequestHandler(ProxyState state, IHttpForwarder forwarder, HttpMessageInvoker upstreamClient, ClientCertificateClients certificateClients, ProxyMetrics metrics, AccessPipeline pipeline, ILogger<ProxyRequestHandler> logger)
    {
        _certificateClients = certificateClients;
        _pipeline = pipeline;
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
        using var activity = ProxyTelemetry.StartRequest(listener.Name, context.Connection.LocalPort, listener.BindEndPoint);
        var request = context.Request;
        if (!TryResolveTarget(context, listener, out var target, out var unresolved))
        {
            // Where the request is going is unknown: the record says what the request named.
            var named = new RequestDestination(string.Empty, request.Host.Host, request.Host.Port ?? 0, request.Method, request.Path.HasValue ? request.Path.Value! : "/");
            _pipeline.Refuse(new AccessRequest(generation, listener, named, activity) { Caller = context.Features.Get<CallerFeature>() }, unresolved.Outcome, unresolved.Detail);
            await WriteProblemAsync(context, activity, unresolved.Status, unresolved.Type, unresolved.Title, unresolved.Detail).ConfigureAwait(false);
            return;
        }

        if (context.Features.Get<OriginalDestinationFeature>() is { } originalDestination && request.Host.HasValue)
        {
            target = target with { Destination = await VerifyTransparentHostAsync(originalDestination, target.Destination, request.Host.Host, snapshot.Policies, context.RequestAborted).ConfigureAwait(false) };
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

        var access = new AccessRequest(generation, listener, destination, activity)
        {
            Caller = context.Features.Get<CallerFeature>(),
            HttpRequest = request,
            PathAmbiguity = target.PathProblem != RequestTargetProblem.None ? RequestPathInspector.Describe(target.PathProblem) : null,
            EncodedSlash = target.HasEncodedSlash ? RequestPathInspector.Describe(RequestTargetProblem.EncodedSlash) : null,
            ClientClosed = context.RequestAborted,
        };
        var decision = await _pipeline.DecideAsync(access, context.RequestAborted).ConfigureAwait(false);
        if (decision is AccessRefusal refusal)
        {
            if (!refusal.AppIsGone)
            {
                var (type, title) = ProblemOf(refusal.Outcome);
                await WriteProblemAsync(context, activity, refusal.Status, type, title, refusal.Reason).ConfigureAwait(false);
            }

            return;
        }

        var grant = (AccessGrant)decision;
        if (snapshot.SpiffeUpstreams?.Find(destination.Host) is { } spiffeUpstream)
        {
            // Verified by SPIFFE bundle and ID: without TLS, or without a bundle, the upstream
            // cannot be verified, and the request is not sent rather than sent unverified.
            string? untrusted;
            try
            {
                untrusted = !string.Equals(destination.Scheme, "https", StringComparison.Ordinal)
                    ? "upstream " + destination.Host + " is verified by SPIFFE ID (Upstreams:SpiffeTrust:" + spiffeUpstream.Name + "), which needs https; this request would go to " + destination.Scheme + "://" + destination.Host + ":" + destination.Port + " without TLS"
                    : await spiffeUpstream.ReadyAsync(context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                grant.Complete(AccessOutcome.ClientAborted, "the app went away while the SPIFFE bundle was being fetched");
                return;
            }

            if (untrusted is not null)
            {
                grant.Refuse(AccessOutcome.UpstreamTlsFailed, untrusted);
                await WriteProblemAsync(context, activity, StatusCodes.Status503ServiceUnavailable, "upstream-trust-unavailable", "Upstream cannot be verified", untrusted).ConfigureAwait(false);
                return;
            }
        }

        ForwardingFeature feature;
        var upstreamClient = _upstreamClient;
        switch (grant.Injection)
        {
            case null:
                feature = new ForwardingFeature(listener.Name, started, rule: null, credential: null, target.Outbound, passRoutingHeaders: null);
                grant.Complete(AccessOutcome.PassedThrough);
                break;

            case ClientCertificateInjector certificateRule:
                // The certificate goes in the TLS handshake of the policy's own client's connections.
                // A credential's certificate (an X.509-SVID the agent streams) may still be on its way for the first request.
                var certificateSource = certificateRule.CredentialName is { } certificateCredential && generation.Credentials.TryGetValue(certificateCredential, out var certificateEntry)
                    ? certificateEntry.Definition.Source as IClientCertificate
                    : null;
                if (certificateSource is not null)
                {
                    try
                    {
                        await certificateSource.WhenLoadedAsync(context.RequestAborted).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                    {
                        grant.Complete(AccessOutcome.ClientAborted, "the app went away while the client certificate was being fetched");
                        return;
                    }
                }

                var certificateClient = UseClientCertificate(grant.Policy!, certificateRule, certificateSource, destination, activity, out var unavailable);
                if (certificateClient is null)
                {
                    grant.Refuse(unavailable.Outcome, unavailable.Detail);
                    await WriteProblemAsync(context, activity, unavailable.Status, unavailable.Type, unavailable.Title, unavailable.Detail).ConfigureAwait(false);
                    return;
                }

                upstreamClient = certificateClient.Invoker;
                feature = new ForwardingFeature(listener.Name, started, rule: null, credential: null, target.Outbound, grant.Policy!.PassRoutingHeaders);
                grant.Complete(AccessOutcome.Forwarded);
                break;

            case HttpRequestInjector rule:
                // A signer may buffer the body: its bytes come from the proxy's budget, released below.
                var signingBuffers = rule is AwsSigV4Injector ? new SigningBufferScope(_state.SigningBuffers) : null;
                feature = new ForwardingFeature(listener.Name, started, rule, grant.Credential, target.Outbound, grant.Policy!.PassRoutingHeaders, signingBuffers);
                grant.Complete(AccessOutcome.Forwarded);
                break;

            default:
                // The pipeline grants only injections this listener's kind declares (Injects).
                throw new UnreachableException("granted an injection an HTTP listener cannot perform: " + grant.Injection.Kind);
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
                await RefuseSigningBufferAsync(context, activity, grant, listener.Name, refused).ConfigureAwait(false);
                return;
            }

            if (AwsSigV4Injector.IsPayloadTooLarge(forwardException) && !context.Response.HasStarted)
            {
                // The signer refused to buffer the body (AwsSigV4 MaxBodyBytes); nothing was sent upstream.
                var detail = "the request body is larger than the policy's AwsSigV4 MaxBodyBytes, the most the proxy buffers to sign it";
                grant.Amend(AccessOutcome.PayloadTooLarge, detail);
                await WriteProblemAsync(context, activity, StatusCodes.Status413PayloadTooLarge, "payload-too-large", "Payload too large", detail).ConfigureAwait(false);
                return;
            }

            var reason = error.ToString();
            Log.UpstreamFailed(_logger, listener.Name, destination.Host, destination.Port, reason);
            _metrics.UpstreamError(listener.Name, reason);
            if (error is ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled)
            {
                grant.Amend(AccessOutcome.ClientAborted, reason);
            }
            else
            {
                grant.Amend(AccessOutcome.UpstreamFailed, reason);
                var status = context.Response.StatusCode >= 500 ? context.Response.StatusCode : StatusCodes.Status502BadGateway;
                await ProblemResponse.WriteAsync(context, status, "upstream-failed", "Upstream request failed", "forwarding to " + destination.Host + ":" + destination.Port + " failed (" + reason + ")", activity?.TraceId.ToString()).ConfigureAwait(false);
            }
        }

        SetStatus(activity, context);
    }

    /// <summary>The problem type and title of a refusal the pipeline decided; the status is the refusal's own.</summary>
    private static (string Type, string Title) ProblemOf(AccessOutcome outcome) => outcome switch
    {
        AccessOutcome.Denied => ("policy-denied", "Denied by policy"),
        AccessOutcome.AmbiguousPath => ("ambiguous-path", "Ambiguous request path"),
        AccessOutcome.MethodRefused => ("method-refused", "Method refused"),
        AccessOutcome.IdentityUnavailable => ("identity-unavailable", "Workload identity unavailable"),
        AccessOutcome.CredentialUnavailable or AccessOutcome.HandshakeTimeout => ("credential-unavailable", "Credential unavailable"),
        _ => (outcome.ToWireName(), "Request refused"),
    };

    private static async Task WriteProblemAsync(HttpContext context, Activity? activity, int status, string type, string title, string detail)
    {
        await ProblemResponse.WriteAsync(context, status, type, title, detail, activity?.TraceId.ToString()).ConfigureAwait(false);
        SetStatus(activity, context);
    }

    /// <summary>
    /// The body could not be buffered for signing within <c>Limits:SigningBufferBytes</c>; nothing
    /// was sent upstream. 503 with Retry-After while other requests hold the budget, 413 when the
    /// body alone is larger than all of it.
    /// </summary>
    private async Task RefuseSigningBufferAsync(HttpContext context, Activity? activity, AccessGrant grant, string listener, SigningBufferRefusedException refused)
    {
        var policy = grant.Policy?.Name ?? string.Empty;
        _metrics.SigningBufferRefusal(policy, refused.Reason);
        string title;
        int? retryAfter = null;
        if (refused.Reason == SigningBufferRefusedException.BufferFull)
        {
            grant.Amend(AccessOutcome.SigningBufferFull, refused.Message);
            Log.SigningBufferFull(_logger, listener, policy, refused.Requested, refused.Held, refused.Capacity);
            title = "Signing buffer full";
            // Bodies held for signing are released as their requests end, typically within seconds.
            retryAfter = 1;
        }
        else
        {
            grant.Amend(AccessOutcome.SigningBodyTooLarge, refused.Message);
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
            refusal = Refusal.BadTarget(AccessOutcome.InvalidRequestTarget, StatusCodes.Status400BadRequest, "Invalid request target", "the asterisk-form target (OPTIONS *) is not forwarded");
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
                refusal = Refusal.BadTarget(AccessOutcome.InvalidRequestTarget, StatusCodes.Status400BadRequest, "Invalid request target", "the request target is neither a path nor an absolute http(s) URL");
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
                refusal = Refusal.BadTarget(AccessOutcome.AbsoluteFormRefused, StatusCodes.Status400BadRequest, "Absolute-form target refused", "a route listener takes a path (origin-form), not a full URL");
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
                refusal = Refusal.BadTarget(AccessOutcome.MisdirectedRequest, StatusCodes.Status421MisdirectedRequest, "Misdirected request", "this tunnel was opened to " + tunnel.Host + ":" + tunnel.Port + "; the request names another host");
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
                refusal = Refusal.BadTarget(AccessOutcome.InvalidRequestTarget, StatusCodes.Status400BadRequest, "Invalid request target", "an absolute-form target must name the request's own Host over http");
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
            refusal = Refusal.BadTarget(AccessOutcome.NotRedirected, StatusCodes.Status400BadRequest, "Not a redirected request", "a transparent listener serves connections redirected by iptables");
            return false;
        }
        else
        {
            // RFC 9112 section 3.2.2: a forward proxy receives the absolute-form target.
            if (absoluteTarget is null || absoluteTarget.Scheme != "http")
            {
                refusal = Refusal.BadTarget(AccessOutcome.NotAProxyRequest, StatusCodes.Status400BadRequest, "Not a proxy request", "a forward proxy needs an absolute http:// URL, or CONNECT for https");
                return false;
            }

            scheme = "http";
            host = absoluteTarget.IdnHost;
            port = absoluteTarget.Port;
            prefix = "http://" + absoluteTarget.Authority;
        }

        if (!OutboundRequest.TryMakeUri(prefix, rawPathAndQuery, out var uri))
        {
            refusal = Refusal.BadTarget(AccessOutcome.InvalidRequestTarget, StatusCodes.Status400BadRequest, "Invalid request target", "the request target does not form a valid URL");
            return false;
        }

        var destination = new RequestDestination(scheme, host, port, request.Method, path.Problem == RequestTargetProblem.None ? path.MatchPath : rawPath, schemeFromApp);
        target = new ResolvedTarget(destination, prefix, new OutboundRequest(uri, outboundHost), path.Problem, path.HasEncodedSlash);
        return true;
    }

    /// <summary>
    /// Transparent plain HTTP: the Host header names the destination only when the original
    /// address is one the name resolves to; otherwise the app could send a credential in plaintext to
    /// any address by writing the policy's host name into Host. Asked only for names a policy covers,
    /// and once per connection and name.
    /// </summary>
    private static async ValueTask<RequestDestination> VerifyTransparentHostAsync(OriginalDestinationFeature original, RequestDestination destination, string hostHeader, PolicySet policies, CancellationToken cancellationToken)
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

    /// <summary>
    /// The client whose connections present the policy's certificate, or null (with the 503 to send)
    /// when it cannot be presented: the request would go in cleartext (a certificate only exists in
    /// TLS, and sending the request without it would be a silent downgrade), or there is no valid
    /// certificate now (expired, unreadable).
    /// </summary>
    private ClientCertificateClients.Client? UseClientCertificate(CompiledPolicy policy, ClientCertificateInjector rule, IClientCertificate? source, in RequestDestination destination, Activity? activity, out Refusal unavailable)
    {
        unavailable = default;
        if (!string.Equals(destination.Scheme, "https", StringComparison.Ordinal))
        {
            var detail = "policy '" + policy.Name + "' presents a TLS client certificate, which needs an https upstream; this request would go to " + destination.Scheme + "://" + destination.Host + ":" + destination.Port + " without TLS";
            unavailable = new Refusal(AccessOutcome.CredentialUnavailable, StatusCodes.Status503ServiceUnavailable, "client-certificate-needs-https", "Credential cannot be presented", detail);
            return null;
        }

        if (rule.CredentialName is not null && source is null)
        {
            // Validation requires a certificate-shaped credential; this guards a reload race.
            var missing = "policy '" + policy.Name + "' needs the client certificate of credential '" + rule.CredentialName + "', which is not configured";
            unavailable = new Refusal(AccessOutcome.CredentialUnavailable, StatusCodes.Status503ServiceUnavailable, "credential-unavailable", "Credential unavailable", missing);
            return null;
        }

        var client = _certificateClients.For(rule, source);
        if (!client.Certificate.TryGetCurrent(out var certificate, out var reason))
        {
            var detail = "policy '" + policy.Name + "' needs the client certificate '" + policy.CredentialName + "', which is unavailable: " + reason;
            unavailable = new Refusal(AccessOutcome.CredentialUnavailable, StatusCodes.Status503ServiceUnavailable, "credential-unavailable", "Credential unavailable", detail);
            return null;
        }

        if (activity is not null)
        {
            activity.SetTag(ProxyTelemetry.Tags.ClientCertificateSubject, certificate!.Subject);
            activity.SetTag(ProxyTelemetry.Tags.ClientCertificateThumbprint, certificate.Thumbprint);
        }

        return client;
    }

    /// <summary>A resolved request: the destination policy matches, the request that goes out, and what its path holds.</summary>
    private readonly record struct ResolvedTarget(RequestDestination Destination, string Prefix, OutboundRequest Outbound, RequestTargetProblem PathProblem, bool HasEncodedSlash);

    /// <summary>A refusal the listener decides itself, with the problem response that tells the app.</summary>
    private readonly record struct Refusal(AccessOutcome Outcome, int Status, string Type, string Title, string Detail)
    {
        /// <summary>A request this listener cannot read: its problem type is the outcome's name.</summary>
        public static Refusal BadTarget(AccessOutcome outcome, int status, string title, string detail) => new(outcome, status, outcome.ToWireName(), title, detail);
    }

    private static void SetStatus(Activity? activity, HttpContext context) =>
        activity?.SetTag(ProxyTelemetry.Tags.StatusCode, context.Response.StatusCode);

    private static partial class Log
    {
        [LoggerMessage(EventIds.SigningBufferFull, LogLevel.Warning, "Refused a request on listener {Listener} (policy {Policy}) with 503: its body needs {RequestedBytes} bytes to be signed and {HeldBytes} of {CapacityBytes} are held by other requests")]
        public static partial void SigningBufferFull(ILogger logger, string listener, string policy, long requestedBytes, long heldBytes, long capacityBytes);

        [LoggerMessage(EventIds.SigningBodyTooLarge, LogLevel.Information, "Refused a request on listener {Listener} (policy {Policy}) with 413: its body needs {RequestedBytes} bytes or more to be signed, more than Limits:SigningBufferBytes ({CapacityBytes})")]
        public static partial void SigningBodyTooLarge(ILogger logger, string listener, string policy, long requestedBytes, long capacityBytes);

        [LoggerMessage(EventIds.UpstreamFailed, LogLevel.Warning, "Forwarding on listener {Listener} to {Host}:{Port} failed: {Error}")]
        public static partial void UpstreamFailed(ILogger logger, string listener, string host, int port, string error);
    }
}
