using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// Upstream hosts in a SPIFFE trust domain: their TLS certificate is verified against the X.509
/// bundle of the trust domain of the SPIFFE ID it names (from the Workload API, kept current by the
/// stream) and that ID must be an allowed one. The DNS name is not checked: SPIFFE workloads are
/// named by ID (X509-SVID profile section 5), and their certificates often carry no DNS name.
/// </summary>
internal sealed class SpiffeUpstream
{
    public SpiffeUpstream(string name, IReadOnlyCollection<string> hosts, SpiffeIdMatcher allowed, X509SvidWatcher bundles, TimeProvider time)
    {
        Name = name;
        Hosts = hosts;
        Allowed = allowed;
        Bundles = bundles;
        Time = time;
    }

    /// <summary>The entry's name under <c>Upstreams:SpiffeTrust</c>.</summary>
    public string Name { get; }

    public IReadOnlyCollection<string> Hosts { get; }

    public SpiffeIdMatcher Allowed { get; }

    public X509SvidWatcher Bundles { get; }

    private TimeProvider Time { get; }

    /// <summary>
    /// Null when a bundle is there to verify with (waiting for the agent's first answer), else why
    /// not: the request then gets 503 rather than a handshake that cannot succeed.
    /// </summary>
    public async Task<string?> ReadyAsync(CancellationToken cancellationToken)
    {
        await Bundles.WhenFirstAnswerAsync(cancellationToken).ConfigureAwait(false);
        return Bundles.Current is null
            ? "upstream trust '" + Name + "' has no X.509 bundle to verify the upstream with: " + (Bundles.LastFailure ?? "the SPIFFE Workload API at " + Bundles.Display + " has not answered")
            : null;
    }

    /// <summary>The TLS validation: the chain ends at the bundle of the leaf's trust domain, and its SPIFFE ID is allowed.</summary>
    public bool Validate(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (IsCa(leaf) || SpiffeCertificates.IdOf(leaf) is not { } id || !Allowed.Matches(id) || !Bundles.TryGetBundle(id.TrustDomainId, out var roots, out _))
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(roots!);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.VerificationTime = Time.GetUtcNow().UtcDateTime;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return custom.Build(leaf);
    }

    /// <summary>
    /// X509-SVID profile section 4.1: a leaf SVID has cA=false and neither keyCertSign nor cRLSign;
    /// a CA certificate that names a SPIFFE ID is not the workload, whatever its URI SAN says.
    /// </summary>
    private static bool IsCa(X509Certificate2 leaf)
    {
        foreach (var extension in leaf.Extensions)
        {
            switch (extension)
            {
                case X509BasicConstraintsExtension { CertificateAuthority: true }:
                    return true;
                case X509KeyUsageExtension usage when (usage.KeyUsages & (X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign)) != 0:
                    return true;
            }
        }

        return false;
    }
}
