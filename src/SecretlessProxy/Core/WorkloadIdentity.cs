namespace SecretlessProxy.Core;

/// <summary>
/// The workload's own identity: a token read from a file (a Kubernetes projected service-account
/// token, a SPIFFE JWT-SVID, a CI OIDC token) and the claims policy conditions compare against.
/// The token is a bearer secret: it is handed to credential sources as a subject or client
/// assertion and never printed (<see cref="ToString"/> names the subject only).
/// </summary>
internal sealed class WorkloadIdentity
{
    public WorkloadIdentity(string token, string? subject, string? issuer, IReadOnlyList<string> audiences, string? kubernetesNamespace, string? serviceAccount, DateTimeOffset? expiresAt, bool verified)
    {
        Token = token;
        Subject = subject;
        Issuer = issuer;
        Audiences = audiences;
        KubernetesNamespace = kubernetesNamespace;
        ServiceAccount = serviceAccount;
        ExpiresAt = expiresAt;
        Verified = verified;
    }

    /// <summary>The raw token (compact JWT). Secret: never log it.</summary>
    public string Token { get; }

    /// <summary>The <c>sub</c> claim.</summary>
    public string? Subject { get; }

    /// <summary>The <c>iss</c> claim.</summary>
    public string? Issuer { get; }

    /// <summary>The <c>aud</c> claim (a string or an array in the token).</summary>
    public IReadOnlyList<string> Audiences { get; }

    /// <summary>From the Kubernetes claim <c>kubernetes.io.namespace</c>.</summary>
    public string? KubernetesNamespace { get; }

    /// <summary>From the Kubernetes claim <c>kubernetes.io.serviceaccount.name</c>.</summary>
    public string? ServiceAccount { get; }

    /// <summary>The <c>exp</c> claim.</summary>
    public DateTimeOffset? ExpiresAt { get; }

    /// <summary>True when the signature, issuer, audience and expiry were verified (JwksUrl or Issuer configured).</summary>
    public bool Verified { get; }

    public override string ToString() => "WorkloadIdentity(" + (Subject ?? "no subject") + ")";
}
