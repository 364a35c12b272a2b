using System.Net;
using SecretlessProxy.Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;
using SecretlessProxy.Identity.Spiffe;
using SecretlessProxy.Policy;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Runtime;

/// <summary>
/// One validated, immutable version of the configuration. The request path reads it without locks;
/// a later version replaces it as a whole.
/// </summary>
internal sealed class ProxySnapshot
{
    /// <summary>The proxy's default drain: 5 s inside Kubernetes' default 30 s grace period.</summary>
    public static readonly TimeSpan DefaultDrainTimeout = TimeSpan.FromSeconds(25);

    /// <summary>64 MiB: a few large signed bodies at once, far below a sidecar's usual memory limit.</summary>
    public const long DefaultSigningBufferBytes = 64L * 1024 * 1024;

    public ProxySnapshot(AdminSettings admin, IReadOnlyDictionary<string, ListenerDefinition> listeners, IReadOnlyList<CredentialDefinition> credentials, PolicySet policies, LocalCaSettings? localCa = null, string? trustedCaFile = null, AuditSettings? audit = null, IWorkloadIdentitySettings? identity = null, IReadOnlyDictionary<string, string>? labels = null, TimeSpan? drainTimeout = null, long? signingBufferBytes = null, IReadOnlyList<IssuerEndpoint>? issuerEndpoints = null, IReadOnlyList<SecretFile>? secretFiles = null)
    {
        SigningBufferBytes = signingBufferBytes ?? DefaultSigningBufferBytes;
        IssuerEndpoints = issuerEndpoints ?? [];
        SecretFiles = secretFiles ?? [];
        DrainTimeout = drainTimeout ?? DefaultDrainTimeout;
        Identity = identity;
        Labels = labels ?? new Dictionary<string, string>();
        Audit = audit ?? AuditSettings.Default;
        LocalCa = localCa;
        TrustedCaFile = trustedCaFile;
        Admin = admin;
        Listeners = listeners;
        Credentials = credentials;
        Policies = policies;
    }

    /// <summary>The admin and probe endpoints and who may change state through them.</summary>
    public AdminSettings Admin { get; }

    /// <summary>Where the admin endpoint is bound: a loopback address or a Unix socket.</summary>
    public EndPoint AdminEndPoint => Admin.EndPoint;

    public IReadOnlyDictionary<string, ListenerDefinition> Listeners { get; }

    public IReadOnlyList<CredentialDefinition> Credentials { get; }

    public PolicySet Policies { get; }

    /// <summary>Set when a Forward listener needs to intercept HTTPS.</summary>
    public LocalCaSettings? LocalCa { get; }

    /// <summary>Extra CAs trusted for upstream TLS, besides the system store.</summary>
    public string? TrustedCaFile { get; }

    /// <summary>Upstreams verified by SPIFFE bundle and ID (<c>Upstreams:SpiffeTrust</c>); null when none. Read at start.</summary>
    /// <remarks>Set before the snapshot is published: a reload hands the running one on (it is restart-only).</remarks>
    public SpiffeUpstreamTrust? SpiffeUpstreams { get; internal set; }

    public AuditSettings Audit { get; }

    /// <summary>The same snapshot with each credential's <see cref="CredentialDefinition.Fingerprint"/> set.</summary>
    internal ProxySnapshot WithCredentialFingerprints(Func<string, string> fingerprint) =>
        new(Admin, Listeners, Credentials.Select(c => c with { Fingerprint = fingerprint(c.Name) }).ToArray(), Policies, LocalCa, TrustedCaFile, Audit, Identity, Labels, DrainTimeout, SigningBufferBytes, IssuerEndpoints, SecretFiles) { SpiffeUpstreams = SpiffeUpstreams };

    /// <summary>The workload identity token settings; null when the proxy has no identity of its own.</summary>
    public IWorkloadIdentitySettings? Identity { get; }

    /// <summary>Where this proxy runs (env, cluster): policies' Labels compare against these.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; }

    /// <summary>Every issuer the credentials and the identity reach, and how: <c>validate</c> and start-up warn about the risky ones.</summary>
    public IReadOnlyList<IssuerEndpoint> IssuerEndpoints { get; }

    /// <summary>
    /// Every file the configuration names that holds a secret (credential files, private keys, token
    /// files) with the key that names it: <c>run --</c> refuses to start a command that could read
    /// one, and <c>validate</c> warns about those readable by group or others.
    /// </summary>
    public IReadOnlyList<SecretFile> SecretFiles { get; }

    /// <summary>How long in-flight requests may finish when the proxy stops (<c>Shutdown:DrainTimeout</c>).</summary>
    public TimeSpan DrainTimeout { get; }

    /// <summary>
    /// Bytes of request bodies the whole proxy holds at once for SigV4 payload signing
    /// (<c>Limits:SigningBufferBytes</c>); applied to the process-wide budget when this version
    /// becomes current.
    /// </summary>
    public long SigningBufferBytes { get; }
}
