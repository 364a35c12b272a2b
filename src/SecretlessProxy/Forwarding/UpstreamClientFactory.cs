using Yarp.ReverseProxy.Forwarder;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// YARP's client settings (no redirects followed, so a credential never travels to a redirect
/// target; no cookies, no decompression, no environment proxy; trace context propagated) with the
/// credential injection handler as the outermost handler.
/// </summary>
internal sealed class UpstreamClientFactory : ForwarderHttpClientFactory
{
    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler) =>
        new CredentialInjectionHandler(base.WrapHandler(context, handler));
}
