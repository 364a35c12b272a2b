using System.Net.Security;
using System.Net.Http;
using System.Security.Cryptography.X509Certificates;
using Yarp.ReverseProxy.Forwarder;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// YARP's client settings (no redirects followed, so a credential never travels to a redirect
/// target; no cookies, no decompression, no environment proxy; trace context propagated) with the
/// credential injection handler as the outermost handler, and upstream TLS verified against the
/// system store plus the configured extra CAs.
/// </summary>
internal sealed class UpstreamClientFactory : ForwarderHttpClientFactory
{
    private readonly X509Certificate2Collection? _extraTrust;

    public UpstreamClientFactory(X509Certificate2Collection? extraTrust)
    {
        _extraTrust = extraTrust;
    }

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        if (_extraTrust is { Count: > 0 } trust)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => ValidateWithExtraTrust(trust, certificate, chain, errors);
        }
    }

    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler) =>
        new CredentialInjectionHandler(base.WrapHandler(context, handler));

    /// <summary>
    /// Accepts what the system store accepts; otherwise a chain that ends in one of the extra CAs.
    /// A name mismatch or a missing certificate is never overlooked.
    /// </summary>
    /// <summary>System trust, or else a chain to one of <paramref name="trust"/>'s CAs; any other TLS error fails. Shared by every client with an extra CA file.</summary>
    internal static bool ValidateWithExtraTrust(X509Certificate2Collection trust, System.Security.Cryptography.X509Certificates.X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate is null)
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(trust);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return custom.Build(leaf);
    }
}
