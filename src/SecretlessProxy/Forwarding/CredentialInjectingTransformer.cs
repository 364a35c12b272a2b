using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using SecretlessProxy.Telemetry;
using Yarp.ReverseProxy.Forwarder;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// YARP's default copy of the request, plus a note on the outgoing message of what to inject. The
/// injection itself happens in <see cref="CredentialInjectionHandler"/>, after YARP has logged the
/// request, so nothing the forwarder writes can contain the credential.
/// </summary>
internal sealed class CredentialInjectingTransformer : HttpTransformer
{
    private readonly ProxyMetrics _metrics;

    public CredentialInjectingTransformer(ProxyMetrics metrics)
    {
        _metrics = metrics;
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
            _metrics.AddedLatency(feature.Listener, Stopwatch.GetElapsedTime(feature.StartTimestamp));
        }
    }
}
