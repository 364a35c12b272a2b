using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using SecretlessProxy.Listeners;
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
        if (httpContext.Request.Host.HasValue &&
            (httpContext.Features.Get<OriginalDestinationFeature>() is not null || httpContext.Features.Get<TunnelFeature>() is { UpstreamAddress: not null }))
        {
            // Transparent mode sends to the original address, so the URL holds an IP; the app's Host
            // (checked against the SNI in a tunnel) stays the Host, and SocketsHttpHandler takes the
            // TLS SNI and the name it verifies in the upstream's certificate from it.
            proxyRequest.Headers.Host = httpContext.Request.Host.Value;
        }

        if (httpContext.Features.Get<ForwardingFeature>() is { } feature)
        {
            proxyRequest.Options.Set(CredentialInjectionHandler.FeatureKey, feature);
            _metrics.AddedLatency(feature.Listener, Stopwatch.GetElapsedTime(feature.StartTimestamp));
        }
    }
}
