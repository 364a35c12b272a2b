using System.Net;
using SecretlessProxy.Credentials;
using SecretlessProxy.Listeners;
using SecretlessProxy.Policy;

namespace SecretlessProxy.Configuration;

/// <summary>
/// One validated, immutable version of the configuration. The request path reads it without locks;
/// a later version replaces it as a whole.
/// </summary>
public sealed class ProxySnapshot
{
    public ProxySnapshot(IPEndPoint adminEndPoint, IReadOnlyDictionary<string, ListenerDefinition> listeners, IReadOnlyList<CredentialDefinition> credentials, PolicySet policies, LocalCaSettings? localCa = null, string? trustedCaFile = null, AuditSettings? audit = null)
    {
        Audit = audit ?? AuditSettings.Default;
        LocalCa = localCa;
        TrustedCaFile = trustedCaFile;
        AdminEndPoint = adminEndPoint;
        Listeners = listeners;
        Credentials = credentials;
        Policies = policies;
    }

    public IPEndPoint AdminEndPoint { get; }

    public IReadOnlyDictionary<string, ListenerDefinition> Listeners { get; }

    public IReadOnlyList<CredentialDefinition> Credentials { get; }

    public PolicySet Policies { get; }

    /// <summary>Set when a Forward listener needs to intercept HTTPS.</summary>
    public LocalCaSettings? LocalCa { get; }

    /// <summary>Extra CAs trusted for upstream TLS, besides the system store.</summary>
    public string? TrustedCaFile { get; }

    public AuditSettings Audit { get; }
}
