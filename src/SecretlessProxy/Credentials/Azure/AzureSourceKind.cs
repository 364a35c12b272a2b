using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>The two Azure.Identity sources: one set of keys, and the checks they share.</summary>
internal abstract class AzureSourceKind : CredentialSourceKind<AzureSourceOptions>
{
    // An access token minted for the workload: as a database password only over verified TLS.
    public override CredentialShape MayYield => CredentialShape.Token | CredentialShape.UsernamePassword | CredentialShape.IssuedToken;

    public override CredentialShape Yields(AzureSourceOptions options, bool hasUsername) =>
        hasUsername ? MayYield : CredentialShape.Token | CredentialShape.IssuedToken;

    protected override AzureSourceOptions BindOptions(IConfigurationSection section) => section.Get<AzureSourceOptions>() ?? new();

    /// <summary>Keys both Azure kinds share: Scopes, CaFile, Timeout and retries.</summary>
    protected static AzureIdentityCredentialSource.Settings? CompileSettings(AzureSourceOptions c, CredentialSourceContext context)
    {
        var key = context.Key;
        var errors = context.Errors;
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
                errors.Add(new(key + ":" + name, "does not apply to " + context.Source + ": Azure.Identity talks to Microsoft Entra itself"));
            }
        }

        var caFile = c.CaFile is null ? null : context.RequireFile(c.CaFile, key + ":CaFile");
        var (timeout, retryAttempts, retryDelay) = context.CompileFetchLimits(c);

        return errors.Count > start ? null : new AzureIdentityCredentialSource.Settings(c.Scopes!, caFile, timeout, retryAttempts, retryDelay, context.Username, context.UsernameFile);
    }
}
