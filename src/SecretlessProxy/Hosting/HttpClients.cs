using System.Diagnostics;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Forwarding;

namespace SecretlessProxy.Hosting;

/// <summary>The two outbound clients: one for upstreams (YARP's settings), one for token endpoints.</summary>
internal static class HttpClients
{
    /// <summary>Upstream requests: YARP's settings plus the injection handler (see <see cref="UpstreamClientFactory"/>).</summary>
    public static HttpMessageInvoker CreateUpstreamClient(string? trustedCaFile) => CreateUpstreamClientFactory(trustedCaFile).CreateClient();

    /// <summary>The factory behind the upstream client, also for the per-certificate clients (<see cref="ClientCertificateClients"/>).</summary>
    public static UpstreamClientFactory CreateUpstreamClientFactory(string? trustedCaFile)
    {
        X509Certificate2Collection? trust = null;
        if (trustedCaFile is not null)
        {
            trust = [];
            trust.ImportFromPemFile(trustedCaFile);
        }

        return new UpstreamClientFactory(trust);
    }

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
