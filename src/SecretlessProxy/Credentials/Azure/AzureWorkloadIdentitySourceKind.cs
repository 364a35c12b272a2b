using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary><c>Source: AzureWorkloadIdentity</c>: a Microsoft Entra token for the workload token as federated client assertion.</summary>
internal sealed class AzureWorkloadIdentitySourceKind : AzureSourceKind
{
    private static readonly Uri PublicCloud = new("https://login.microsoftonline.com/");

    public override string Name => "AzureWorkloadIdentity";

    public override ICredentialSource? Compile(AzureSourceOptions c, CredentialSourceContext context)
    {
        var key = context.Key;
        var errors = context.Errors;
        var start = errors.Count;
        if (!context.IdentityConfigured)
        {
            errors.Add(new(key + ":Source", "AzureWorkloadIdentity needs the workload identity: configure SecretlessProxy:Identity (its token is the federated client assertion)"));
        }

        // Azure.Identity accepts tenant ids of letters, digits, '-' and '.' (a GUID or a domain name)
        // and throws on anything else; checked here so the error names the key.
        if (string.IsNullOrWhiteSpace(c.TenantId))
        {
            errors.Add(new(key + ":TenantId", "is required for an AzureWorkloadIdentity credential (the Microsoft Entra tenant id)"));
        }
        else if (!c.TenantId.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '.'))
        {
            errors.Add(new(key + ":TenantId", "'" + c.TenantId + "' is not a tenant id (a GUID or a domain name)"));
        }

        if (string.IsNullOrWhiteSpace(c.ClientId))
        {
            errors.Add(new(key + ":ClientId", "is required for an AzureWorkloadIdentity credential (the application's client id)"));
        }

        var authorityHost = PublicCloud;
        if (c.AuthorityHost is not null)
        {
            // The SDK refuses anything but https: a token request sent in the clear would hand over the assertion.
            if (!Uri.TryCreate(c.AuthorityHost, UriKind.Absolute, out var parsed) || parsed.Scheme != "https" || !string.IsNullOrEmpty(parsed.UserInfo) ||
                !string.IsNullOrEmpty(parsed.Query) || !string.IsNullOrEmpty(parsed.Fragment) || parsed.AbsolutePath != "/")
            {
                errors.Add(new(key + ":AuthorityHost", "'" + ConfigChecks.WithoutUserInfo(c.AuthorityHost) + "' is not an https authority host such as https://login.microsoftonline.com/ (no path, query or user info)"));
            }
            else
            {
                authorityHost = parsed;
            }
        }

        var settings = CompileSettings(c, context);
        IssuerEndpoint? endpoint = null;
        if (errors.Count == start)
        {
            endpoint = context.CompileIssuerEndpoint("AuthorityHost", authorityHost, c, "the workload token (the federated client assertion)");
            if (c.CaFile is not null && c.PinnedCertificateSha256 is not null)
            {
                errors.Add(new(key + ":CaFile", "give CaFile or PinnedCertificateSha256, not both: a pinned certificate is trusted by its fingerprint alone"));
            }
        }

        if (errors.Count > start || settings is null || endpoint is null)
        {
            return null;
        }

        settings = settings with { Endpoint = endpoint };
        return AzureIdentityCredentialSource.ForWorkloadIdentity(c.TenantId!, c.ClientId!, authorityHost, settings, context.Identity, context.TokenClient, context.Time);
    }
}
