namespace SecretlessProxy.Credentials;

/// <summary><c>Source: AzureManagedIdentity</c>: a token for the host's managed identity, from the host's identity endpoint.</summary>
internal sealed class AzureManagedIdentitySourceKind : AzureSourceKind
{
    public override string Name => "AzureManagedIdentity";

    public override ICredentialSource? Compile(AzureSourceOptions c, CredentialSourceContext context)
    {
        var key = context.Key;
        var errors = context.Errors;
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

        context.RejectIssuerEndpointKeys(c, "the SDK finds the host's identity endpoint itself");

        // A managed identity token is for one resource: the scope is its resource URI plus /.default.
        if (c.Scopes is { Length: > 1 })
        {
            errors.Add(new(key + ":Scopes", "give exactly one scope for AzureManagedIdentity (a managed identity token is for one resource, e.g. https://storage.azure.com/.default)"));
        }

        var settings = CompileSettings(c, context);
        if (errors.Count > start || settings is null)
        {
            return null;
        }

        return AzureIdentityCredentialSource.ForManagedIdentity(c.ClientId, settings, context.TokenClient, context.Time);
    }
}
