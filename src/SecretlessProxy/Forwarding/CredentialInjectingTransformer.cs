using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// YARP's default copy of the request, plus a note on the outgoing message of what to inject. The
/// injection itself happens in <see cref="CredentialInjectionHandler"/>, after YARP has logged the
/// request, so nothing the forwarder writes can contain the credential.
/// </summary>
internal sealed class CredentialInjectingTransformer : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        if (httpContext.Features.Get<InjectionFeature>() is { } injection)
        {
            proxyRequest.Options.Set(CredentialInjectionHandler.InjectionKey, injection);
        }
    }
}
