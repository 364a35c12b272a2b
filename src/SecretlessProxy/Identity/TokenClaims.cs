using System.Buffers.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using SecretlessProxy.Core;

namespace SecretlessProxy.Identity;

/// <summary>The claims a <see cref="WorkloadIdentity"/> carries, read from a parsed (not yet trusted) token.</summary>
internal sealed class TokenClaims
{
    private const string ServiceAccountSubjectPrefix = "system:serviceaccount:";

    public string? Subject { get; private init; }

    public string? Issuer { get; private init; }

    public string[] Audiences { get; private init; } = [];

    public DateTimeOffset? ExpiresAt { get; private init; }

    public DateTimeOffset? NotBefore { get; private init; }

    public string? Namespace { get; private init; }

    public string? ServiceAccount { get; private init; }

    public WorkloadIdentity ToIdentity(string token, bool verified) =>
        new(token, Subject, Issuer, Audiences, Namespace, ServiceAccount, ExpiresAt, verified);

    public static TokenClaims Read(JsonWebToken jwt)
    {
        var subject = NullIfEmpty(jwt.Subject);
        var (ns, serviceAccount) = ReadKubernetes(jwt.EncodedPayload);
        if ((ns is null || serviceAccount is null) && TryParseServiceAccountSubject(subject, out var subjectNs, out var subjectName))
        {
            ns ??= subjectNs;
            serviceAccount ??= subjectName;
        }

        return new TokenClaims
        {
            Subject = subject,
            Issuer = NullIfEmpty(jwt.Issuer),
            Audiences = jwt.Audiences.ToArray(),
            ExpiresAt = jwt.ValidTo == DateTime.MinValue ? null : new DateTimeOffset(DateTime.SpecifyKind(jwt.ValidTo, DateTimeKind.Utc)),
            NotBefore = jwt.ValidFrom == DateTime.MinValue ? null : new DateTimeOffset(DateTime.SpecifyKind(jwt.ValidFrom, DateTimeKind.Utc)),
            Namespace = ns,
            ServiceAccount = serviceAccount,
        };
    }

    /// <summary>
    /// The object claim Kubernetes puts in projected service-account tokens:
    /// <c>{"kubernetes.io":{"namespace":"jobs","serviceaccount":{"name":"exporter","uid":"..."}}}</c>.
    /// Read with <see cref="JsonDocument"/> because IdentityModel's typed claim getters for objects
    /// go through reflection-based serialization.
    /// </summary>
    private static (string? Namespace, string? ServiceAccount) ReadKubernetes(string encodedPayload)
    {
        try
        {
            using var doc = JsonDocument.Parse(Base64Url.DecodeFromChars(encodedPayload));
            if (doc.RootElement.ValueKind != JsonValueKind.Object ||
                !doc.RootElement.TryGetProperty("kubernetes.io", out var kubernetes) ||
                kubernetes.ValueKind != JsonValueKind.Object)
            {
                return (null, null);
            }

            string? ns = null;
            string? serviceAccount = null;
            if (kubernetes.TryGetProperty("namespace", out var nsElement) && nsElement.ValueKind == JsonValueKind.String)
            {
                ns = NullIfEmpty(nsElement.GetString());
            }

            if (kubernetes.TryGetProperty("serviceaccount", out var sa) && sa.ValueKind == JsonValueKind.Object &&
                sa.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String)
            {
                serviceAccount = NullIfEmpty(name.GetString());
            }

            return (ns, serviceAccount);
        }
        catch (Exception ex) when (ex is FormatException or JsonException)
        {
            return (null, null);
        }
    }

    /// <summary>The subject Kubernetes gives service-account tokens: <c>system:serviceaccount:&lt;namespace&gt;:&lt;name&gt;</c>.</summary>
    private static bool TryParseServiceAccountSubject(string? subject, out string? ns, out string? name)
    {
        ns = name = null;
        if (subject is null || !subject.StartsWith(ServiceAccountSubjectPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = subject.AsSpan(ServiceAccountSubjectPrefix.Length);
        var colon = rest.IndexOf(':');
        if (colon <= 0 || colon == rest.Length - 1 || rest[(colon + 1)..].Contains(':'))
        {
            return false;
        }

        ns = rest[..colon].ToString();
        name = rest[(colon + 1)..].ToString();
        return true;
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
