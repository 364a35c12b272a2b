using System.Diagnostics;
using System.Net;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace SecretlessProxy.Hosting;

/// <summary>The two outbound clients: one for upstreams (YARP's settings), one for token endpoints.</summary>
internal static class HttpClients
{
    /// <summary>
    /// YARP's factory settings: no redirects followed (a redirect must never carry an injected
    /// credential elsewhere), no cookies, no decompression, no environment proxy, trace context propagated.
    /// </summary>
    public static HttpMessageInvoker CreateUpstreamClient() =>
        new ForwarderHttpClientFactory().CreateClient(new ForwarderHttpClientContext { NewConfig = HttpClientConfig.Empty });

    /// <summary>
    /// Token endpoints: no redirects (the client secret must not follow one), and no environment
    /// proxy, because in <c>run --</c> mode HTTP_PROXY may point at this very process.
    /// </summary>
    public static HttpMessageInvoker CreateTokenClient() =>
        new(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.All,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            ActivityHeadersPropagator = DistributedContextPropagator.Current,
        });
}
