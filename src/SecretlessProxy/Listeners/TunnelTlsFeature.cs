using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Http.Features;

namespace SecretlessProxy.Listeners;

/// <summary>
/// Tells Kestrel that an intercepted tunnel is TLS and which protocol ALPN chose, so that a client
/// offering h2 gets HTTP/2 inside the tunnel, as Kestrel's own HTTPS middleware would arrange.
/// </summary>
internal sealed class TunnelTlsFeature : ITlsConnectionFeature, ITlsApplicationProtocolFeature
{
    public TunnelTlsFeature(ReadOnlyMemory<byte> applicationProtocol)
    {
        ApplicationProtocol = applicationProtocol;
    }

    public ReadOnlyMemory<byte> ApplicationProtocol { get; }

    /// <summary>The proxy does not ask clients for certificates inside a tunnel.</summary>
    public X509Certificate2? ClientCertificate
    {
        get => null;
        set => throw new NotSupportedException();
    }

    public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);
}
