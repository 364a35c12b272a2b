using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity.Spiffe;

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
    private readonly IClientCertificate? _clientCertificate;
    private readonly SpiffeUpstreamTrust? _spiffe;

    public UpstreamClientFactory(X509Certificate2Collection? extraTrust, IClientCertificate? clientCertificate = null, SpiffeUpstreamTrust? spiffe = null)
    {
        _extraTrust = extraTrust;
        _clientCertificate = clientCertificate;
        _spiffe = spiffe is { Upstreams.Count: > 0 } ? spiffe : null;
    }

    /// <summary>The same settings and trust, for a client whose connections present <paramref name="certificate"/>.</summary>
    public UpstreamClientFactory WithClientCertificate(IClientCertificate certificate) => new(_extraTrust, certificate, _spiffe);

    public HttpMessageInvoker CreateClient() => CreateClient(new ForwarderHttpClientContext { NewConfig = HttpClientConfig.Empty });

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        if (_spiffe is { } spiffe)
        {
            // The sender is the SslStream; its target host is the name the connection was made for
            // (the SNI): an upstream in a SPIFFE trust domain is verified by bundle and ID instead.
            var extra = _extraTrust is { Count: > 0 } ? _extraTrust : null;
            handler.SslOptions.RemoteCertificateValidationCallback = (sender, certificate, chain, errors) =>
                sender is SslStream { TargetHostName: { } host } && spiffe.Find(host) is { } upstream
                    ? upstream.Validate(certificate, chain, errors)
                    : extra is not null ? ExtraTrust.Validate(extra, certificate, chain, errors) : errors == SslPolicyErrors.None;
        }
        else if (_extraTrust is { Count: > 0 } trust)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => ExtraTrust.Validate(trust, certificate, chain, errors);
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

    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler)
    {
        if (_clientCertificate is IClientCertificateChain chain && handler is SocketsHttpHandler template)
        {
            // An X.509-SVID's intermediates go with the leaf (a selection callback sends the leaf
            // alone): a handler per chain, configured like this one, rebuilt on rotation.
            handler = new ClientCertificateChainHandler(chain, handler, certificateContext =>
            {
                // The settings YARP's CreateClient gives a handler before ConfigureHandler, then ours.
                var presenting = new SocketsHttpHandler
                {
                    UseProxy = template.UseProxy,
                    AllowAutoRedirect = template.AllowAutoRedirect,
                    AutomaticDecompression = template.AutomaticDecompression,
                    UseCookies = template.UseCookies,
                    EnableMultipleHttp2Connections = template.EnableMultipleHttp2Connections,
                    ActivityHeadersPropagator = template.ActivityHeadersPropagator,
                    ConnectTimeout = template.ConnectTimeout,
                };
                ConfigureHandler(context, presenting);
                presenting.SslOptions.LocalCertificateSelectionCallback = null;
                presenting.SslOptions.ClientCertificateContext = certificateContext;
                return presenting;
            });
        }

        return new CredentialInjectionHandler(base.WrapHandler(context, handler));
    }

}
