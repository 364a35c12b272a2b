using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Identity.Spiffe;

namespace SecretlessProxy.Credentials;

/// <summary>
/// The workload's X.509-SVID as a TLS client certificate. The agent streams it (FetchX509SVID) and
/// rotates it; every new upstream connection presents the current one, an expired one never. It is
/// not a value to fetch: the cache never leases it, the handshake asks <see cref="TryGetCurrent"/>.
/// The stream starts at the first use and stops when a reload drops the credential or the proxy stops.
/// </summary>
internal sealed class SpiffeX509SvidSource : ICredentialSource, IClientCertificate, IClientCertificateChain
{
    public const string SourceName = "SpiffeX509Svid";

    private readonly X509SvidWatcher _watcher;

    public SpiffeX509SvidSource(X509SvidWatcher watcher)
    {
        _watcher = watcher;
    }

    public string Kind => SourceName;

    public Task<Credential> FetchAsync(CancellationToken cancellationToken) =>
        throw new CredentialFetchException("a SpiffeX509Svid credential is a TLS client certificate: it is presented in the handshake (Inject:ClientCertificate:Credential), not sent as a value", isTransient: false);

    public bool TryGetCurrent(out X509Certificate2? certificate, out string reason)
    {
        var found = _watcher.TryGetSvid(out var svid, out reason);
        certificate = svid?.Certificate;
        return found;
    }

    public bool TryGetCurrentContext(out SslStreamCertificateContext? context, out string reason)
    {
        var found = _watcher.TryGetSvid(out var svid, out reason);
        context = found ? svid!.TlsContext : null;
        return found;
    }

    public Task WhenLoadedAsync(CancellationToken cancellationToken) => _watcher.WhenFirstAnswerAsync(cancellationToken);

    public ValueTask ReleaseAsync(CancellationToken cancellationToken)
    {
        _watcher.Dispose();
        return ValueTask.CompletedTask;
    }

    public CredentialSourceDescription Describe() => new(
        "SPIFFE Workload API at " + _watcher.Display,
        "streamed by the agent (FetchX509SVID); every new upstream connection presents the current X.509-SVID",
        "as the SPIRE server issues it (one hour by default), renewed by the agent at half its lifetime",
        "none at the proxy: the certificate stays valid until it expires; delete the registration entry at the SPIRE server");
}
