using SecretlessProxy.Core;
using SecretlessProxy.Credentials;

namespace SecretlessProxy.Configuration;

public sealed partial class SnapshotCompiler
{
    private static readonly Uri AzurePublicCloud = new("https://login.microsoftonline.com/");

    private AzureIdentityCredentialSource? CompileAzureWorkloadIdentity(string key, CredentialOptions c, string? usernameFile, bool identityConfigured, List<ConfigError> errors)
    {
        var start = errors.Count;
        if (!identityConfigured)
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

        var authorityHost = AzurePublicCloud;
        if (c.AuthorityHost is not null)
        {
            // The SDK refuses anything but https: a token request sent in the clear would hand over the assertion.
            if (!Uri.TryCreate(c.AuthorityHost, UriKind.Absolute, out var parsed) || parsed.Scheme != "https" || !string.IsNullOrEmpty(parsed.UserInfo) ||
                !string.IsNullOrEmpty(parsed.Query) || !string.IsNullOrEmpty(parsed.Fragment) || parsed.AbsolutePath != "/")
            {
                errors.Add(new(key + ":AuthorityHost", "'" + WithoutUserInfo(c.AuthorityHost) + "' is not an https authority host such as https://login.microsoftonline.com/ (no path, query or user info)"));
            }
            else
            {
                authorityHost = parsed;
            }
        }

        var settings = CompileAzureSettings(key, c, usernameFile, errors);
        IssuerEndpoint? endpoint = null;
        if (errors.Count == start)
        {
            endpoint = CompileIssuerEndpoint(key, "AuthorityHost", authorityHost, c.UnixSocket, c.PinnedCertificateSha256, c.AllowLoopbackSquatting, "the workload token (the federated client assertion)", errors);
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
        return AzureIdentityCredentialSource.ForWorkloadIdentity(c.TenantId!, c.ClientId!, authorityHost, settings, _identity, _tokenClient, _time);
    }

    private AzureIdentityCredentialSource? CompileAzureManagedIdentity(string key, CredentialOptions c, string? usernameFile, List<ConfigError> errors)
    {
        var start = errors.Count;
        if (c.ClientId is not null && string.IsNullOrWhiteSpace(c.ClientId))
        {
            errors.Add(new(key + ":ClientId", "must not be empty: omit it for the system-assigned identity"));
        }

        if (c.TenantId is not null)
        {
            errors.Add(new(key + ":TenantId", "does not apply to AzureManagedIdentity: the host's identity belongs to its own tenant"));
        }

        if (c.AuthorityHost is not null)
        {
            errors.Add(new(key + ":AuthorityHost", "does not apply to AzureManagedIdentity: tokens come from the host's identity endpoint"));
        }

        RejectIssuerEndpointKeys(key, c, "the SDK finds the host's identity endpoint itself", errors);

        // A managed identity token is for one resource: the scope is its resource URI plus /.default.
        if (c.Scopes is { Length: > 1 })
        {
            errors.Add(new(key + ":Scopes", "give exactly one scope for AzureManagedIdentity (a managed identity token is for one resource, e.g. https://storage.azure.com/.default)"));
        }

        var settings = CompileAzureSettings(key, c, usernameFile, errors);
        if (errors.Count > start || settings is null)
        {
            return null;
        }

        return AzureIdentityCredentialSource.ForManagedIdentity(c.ClientId, settings, _tokenClient, _time);
    }

    /// <summary>Keys both Azure kinds share: Scopes, CaFile, Timeout and retries.</summary>
    private AzureIdentityCredentialSource.Settings? CompileAzureSettings(string key, CredentialOptions c, string? usernameFile, List<ConfigError> errors)
    {
        var start = errors.Count;
        if (c.Scopes is not { Length: > 0 })
        {
            errors.Add(new(key + ":Scopes", "is required: the resource's scope, e.g. https://storage.azure.com/.default"));
        }
        else
        {
            for (var i = 0; i < c.Scopes.Length; i++)
            {
                if (string.IsNullOrWhiteSpace(c.Scopes[i]) || c.Scopes[i].Any(char.IsWhiteSpace))
                {
                    errors.Add(new(key + ":Scopes:" + i, "'" + c.Scopes[i] + "' is not a scope: scopes hold no spaces"));
                }
            }
        }

        foreach (var (name, value) in new[] { ("TokenUrl", (object?)c.TokenUrl), ("ClientSecretFile", c.ClientSecretFile), ("ClientAssertion", c.ClientAssertion), ("ClientAuth", c.ClientAuth) })
        {
            if (value is not null)
            {
                errors.Add(new(key + ":" + name, "does not apply to " + c.Source + ": Azure.Identity talks to Microsoft Entra itself"));
            }
        }

        var caFile = c.CaFile is null ? null : RequireFile(c.CaFile, key + ":CaFile", errors);
        var retryAttempts = c.RetryAttempts ?? 2;
        if (retryAttempts is < 0 or > 10)
        {
            errors.Add(new(key + ":RetryAttempts", "must be between 0 and 10"));
        }

        var timeout = Positive(c.Timeout, TimeSpan.FromSeconds(10), key + ":Timeout", errors);
        var retryDelay = NonNegative(c.RetryDelay, TimeSpan.FromMilliseconds(200), key + ":RetryDelay", errors);
        return errors.Count > start ? null : new AzureIdentityCredentialSource.Settings(c.Scopes!, caFile, timeout, retryAttempts, retryDelay, c.Username, usernameFile);
    }
}
