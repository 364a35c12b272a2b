using System.Net.Security;
using System.Net.Http;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Credentials;
using Yarp.ReverseProxy.Configuration;
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
    /// <summary>
    /// How long a connection that presents a client certificate is reused: a rotated certificate
    /// is used by every new connection at once, and pooled connections roll over to it within this.
    /// </summary>
    internal static readonly TimeSpan ClientCertificateConnectionLifetime = TimeSpan.FromMinutes(5);

    private readonly X509Certificate2Collection? _extraTrust;
    private readonly ClientCertificateFiles? _clientCertificate;

    public UpstreamClientFactory(X509Certificate2Collection? extraTrust, ClientCertificateFiles? clientCertificate = null)
    {
        _extraTrust = extraTrust;
        _clientCertificate = clientCertificate;
    }

    /// <summary>The same settings and trust, for a client whose connections present <paramref name="certificate"/>.</summary>
    public UpstreamClientFactory WithClientCertificate(ClientCertificateFiles certificate) => new(_extraTrust, certificate);

    public HttpMessageInvoker CreateClient() => CreateClient(new ForwarderHttpClientContext { NewConfig = HttpClientConfig.Empty });

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        if (_extraTrust is { Count: > 0 } trust)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => ValidateWithExtraTrust(trust, certificate, chain, errors);
        }

        if (_clientCertificate is { } files)
        {
            // Asked during each new connection's handshake, so a rotated file is used by the next
            // connection. Null (expired, unreadable) sends no certificate and the upstream refuses;
            // the request handler checks first and answers 503 without calling the upstream.
            handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => files.TryGetCurrent(out var certificate, out _) ? certificate! : null!;
            // A resumed TLS session would carry the identity of the certificate it was made with.
            handler.SslOptions.AllowTlsResume = false;
            handler.PooledConnectionLifetime = ClientCertificateConnectionLifetime;
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
