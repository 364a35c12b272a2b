using System.Net.Security;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// A client certificate that comes with intermediates to send in the handshake (an X.509-SVID
/// issued under an intermediate CA). The upstream client presents the whole chain, not the leaf
/// alone, and builds a new connection pool when the context changes (a rotation).
/// </summary>
internal interface IClientCertificateChain
{
    /// <summary>The context to present now, or false with the reason (never key material) when none is valid.</summary>
    bool TryGetCurrentContext(out SslStreamCertificateContext? context, out string reason);
}
