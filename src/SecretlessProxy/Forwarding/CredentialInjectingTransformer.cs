using System.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// YARP's default copy of the request, plus a note on the outgoing message of what to inject. The
/// injection itself happens in <see cref="CredentialInjectionHandler"/>, after YARP has logged the
/// request, so nothing the forwarder writes can contain the credential.
/// </summary>
internal sealed class CredentialInjectingTransformer : HttpTransformer
{
    private readonly ProxyMetrics _metrics;
    private readonly ResponseMaskers _maskers;

    public CredentialInjectingTransformer(ProxyMetrics metrics, ILogger logger)
    {
        _metrics = metrics;
        _maskers = new ResponseMaskers(logger);
    }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        if (httpContext.Features.Get<ForwardingFeature>() is { } feature)
        {
            // The URL and Host policy matched, not YARP's re-encoding of the decoded path (which turned
            // "..%2f" into "..%252f") nor the app's Host (which chose the SNI and certificate name).
            proxyRequest.RequestUri = feature.Outbound.Uri;
            proxyRequest.Headers.Host = feature.Outbound.Host;
            if (feature.PassRoutingHeaders is { } passed)
            {
                RoutingOverrideHeaders.Remove(proxyRequest, passed);
            }

            proxyRequest.Options.Set(CredentialInjectionHandler.FeatureKey, feature);
            if (feature.SigningBuffers is { } signingBuffers)
            {
                proxyRequest.Options.Set(Injection.SigningBufferScope.OptionsKey, signingBuffers);
            }

            _metrics.AddedLatency(feature.Listener, Stopwatch.GetElapsedTime(feature.StartTimestamp));
        }
    }

    /// <summary>
    /// YARP's copy of the status and headers, then the injected value masked in them; the body is
    /// masked as the forwarder reads it (<see cref="SecretMaskingContent"/>), which it does right
    /// after this returns. Nothing is wrapped for a pass-through or when nothing can match.
    /// </summary>
    public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var copied = base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        if (proxyResponse is null || httpContext.Features.Get<ForwardingFeature>() is not { Rule: { } rule, Credential: { } credential } feature)
        {
            return copied;
        }

        return copied.IsCompletedSuccessfully
            ? new ValueTask<bool>(MaskResponse(httpContext, proxyResponse, _maskers.For(rule, credential, feature.Listener), copied.Result))
            : MaskAfterCopyAsync(copied, httpContext, proxyResponse, _maskers.For(rule, credential, feature.Listener));
    }

    /// <summary>Trailers (HTTP/2 and chunked HTTP/1.1, gRPC status messages) are masked like headers.</summary>
    public override async ValueTask TransformResponseTrailersAsync(HttpContext httpContext, HttpResponseMessage proxyResponse, CancellationToken cancellationToken)
    {
        await base.TransformResponseTrailersAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        if (httpContext.Features.Get<IHttpResponseTrailersFeature>()?.Trailers is { Count: > 0 } trailers &&
            httpContext.Features.Get<ForwardingFeature>() is { Rule: { } rule, Credential: { } credential } feature &&
            _maskers.For(rule, credential, feature.Listener) is { } masker)
        {
            masker.MaskHeaders(trailers, rewriteUrls: false);
        }
    }

    private static async ValueTask<bool> MaskAfterCopyAsync(ValueTask<bool> copied, HttpContext httpContext, HttpResponseMessage proxyResponse, ResponseSecretMasker? masker) =>
        MaskResponse(httpContext, proxyResponse, masker, await copied.ConfigureAwait(false));

    private static bool MaskResponse(HttpContext httpContext, HttpResponseMessage proxyResponse, ResponseSecretMasker? masker, bool copyBody)
    {
        if (masker is null)
        {
            return copyBody;
        }

        masker.MaskResponseHeaders(httpContext);
        var response = httpContext.Response;
        // A body only when one follows (not HEAD, 204, 304, or a 101 whose upgraded stream is not
        // HTTP and is not scanned), and only identity-encoded: a compressed body is passed untouched.
        if (copyBody &&
            !HttpMethods.IsHead(httpContext.Request.Method) &&
            response.StatusCode is not (StatusCodes.Status101SwitchingProtocols or StatusCodes.Status204NoContent or StatusCodes.Status304NotModified) &&
            IsIdentityEncoded(response.Headers.ContentEncoding) &&
            masker.CouldMatchBody(response.ContentLength))
        {
            proxyResponse.Content = new SecretMaskingContent(proxyResponse.Content, masker);
        }

        return copyBody;
    }

    private static bool IsIdentityEncoded(Microsoft.Extensions.Primitives.StringValues contentEncoding)
    {
        foreach (var value in contentEncoding)
        {
            foreach (var range in value.AsSpan().Split(','))
            {
                var coding = value.AsSpan()[range].Trim();
                if (!coding.IsEmpty && !coding.Equals("identity", StringComparison.OrdinalIgnoreCase))
                {
                    return false;
                }
            }
        }

        return true;
    }
}
