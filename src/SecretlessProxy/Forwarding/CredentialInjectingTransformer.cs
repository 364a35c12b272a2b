using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// YARP's default copy of the request, then the policy's injection on the outgoing message. The
/// injection runs last so that nothing the app sent under the injected name survives.
/// </summary>
internal sealed class CredentialInjectingTransformer : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        if (httpContext.Features.Get<InjectionFeature>() is { } injection)
        {
            // YARP fills in the URI after the transform when it is still null; a query injector
            // needs it now, so build it the same way the forwarder would.
            if (injection.Rule.RewritesUri)
            {
                proxyRequest.RequestUri ??= RequestUtilities.MakeDestinationAddress(destinationPrefix, httpContext.Request.Path, httpContext.Request.QueryString);
            }

            injection.Rule.Apply(proxyRequest, injection.Credential);
        }
    }
}
