using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Core;

/// <summary>
/// Server certificate validation for every outbound client (upstreams, token endpoints, Vault):
/// what the system store accepts, otherwise a chain that ends in one of the configured extra CAs.
/// A name mismatch or a missing certificate is never overlooked.
/// </summary>
internal static class ExtraTrust
{
    /// <summary>System trust, or else a chain to one of <paramref name="trust"/>'s CAs; any other TLS error fails. Shared by every client with an extra CA file.</summary>
    public static bool Validate(X509Certificate2Collection trust, System.Security.Cryptography.X509Certificates.X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
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
