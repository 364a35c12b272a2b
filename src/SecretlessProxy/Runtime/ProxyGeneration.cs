using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Runtime;

/// <summary>
/// One applied configuration version as a request sees it: the snapshot that decides, the
/// credential entries that match its definitions, and the workload identity. Published with a
/// single write and read once per request, so a reload can never pair a policy of one version
/// with a credential definition of another (a re-pointed credential sent to the old host).
/// </summary>
internal sealed class ProxyGeneration
{
    public ProxyGeneration(ProxySnapshot snapshot, IReadOnlyDictionary<string, CredentialEntry> credentials, IWorkloadIdentitySource? identity)
    {
        Snapshot = snapshot;
        Credentials = credentials;
        Identity = identity;
    }

    public ProxySnapshot Snapshot { get; }

    public IReadOnlyDictionary<string, CredentialEntry> Credentials { get; }

    public IWorkloadIdentitySource? Identity { get; }

    /// <summary>Returns a valid credential of this version or throws <see cref="CredentialUnavailableException"/>.</summary>
    public ValueTask<CredentialLease> GetCredentialAsync(string name, CancellationToken cancellationToken) =>
        CredentialCache.GetFrom(Credentials, name, cancellationToken);
}
