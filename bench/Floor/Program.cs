// The floor: what the route-mode hot path costs on this stack with nothing of the proxy's own
// (no policy, no credential cache, no attestation, no telemetry). Usage: floor LISTEN_URL UPSTREAM_URL.
// The upstream answer is streamed back unchanged; the request loses the app's Authorization and
// gets a fixed bearer header, as the proxy's route does with a cached token.
using System.Net;
using Yarp.ReverseProxy.Forwarder;

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseUrls(args[0]);
builder.Services.AddHttpForwarder();
var app = builder.Build();

var invoker = new HttpMessageInvoker(new SocketsHttpHandler
{
    UseProxy = false,
    AllowAutoRedirect = false,
    AutomaticDecompression = DecompressionMethods.None,
    UseCookies = false,
    ActivityHeadersPropagator = null,
    ConnectTimeout = TimeSpan.FromSeconds(15),
});
var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
var transformer = new BearerTransformer();
var config = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromSeconds(100) };
var upstream = args[1];
app.Run(async context => await forwarder.SendAsync(context, upstream, invoker, config, transformer));
app.Run();

internal sealed class BearerTransformer : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Remove("Authorization");
        proxyRequest.Headers.TryAddWithoutValidation("Authorization", "Bearer bench-token-0123456789abcdef");
    }
}
