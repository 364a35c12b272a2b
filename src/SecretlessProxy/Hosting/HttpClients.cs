using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Forwarding;
using SecretlessProxy.Identity.Spiffe;

namespace SecretlessProxy.Hosting;

/// <summary>The two outbound clients: one for upstreams (YARP's settings), one for token endpoints.</summary>
internal static class HttpClients
{
    /// <summary>Upstream requests: YARP's settings plus the injection handler (see <see cref="UpstreamClientFactory"/>).</summary>
    public static HttpMessageInvoker CreateUpstreamClient(string? trustedCaFile) => CreateUpstreamClientFactory(trustedCaFile).CreateClient();

    /// <summary>The factory behind the upstream client, also for the per-certificate clients (<see cref="ClientCertificateClients"/>).</summary>
    public static UpstreamClientFactory CreateUpstreamClientFactory(string? trustedCaFile, SpiffeUpstreamTrust? spiffe = null)
    {
        X509Certificate2Collection? trust = null;
        if (trustedCaFile is not null)
        {
            trust = [];
            trust.ImportFromPemFile(trustedCaFile);
        }

        return new UpstreamClientFactory(trust, spiffe: spiffe);
    }

    /// <summary>
    /// Issuers on the network (token endpoints, STS, Vault, key sets): no redirects, no environment
    /// proxy, and no connection to this host (<see cref="IssuerTransport"/>); an endpoint configured
    /// for loopback gets a transport of its own.
    /// </summary>
    public static HttpMessageInvoker CreateTokenClient() => new(IssuerTransport.CreateHandler());
}
