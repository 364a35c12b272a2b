using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary><c>Source: OAuth2ClientCredentials</c>: an access token from a token endpoint, for a client secret or the workload token.</summary>
internal sealed class OAuth2ClientCredentialsSourceKind : CredentialSourceKind<OAuth2ClientCredentialsSourceOptions>
{
    public override string Name => "OAuth2ClientCredentials";

    // An access token minted for the workload: as a database password only over verified TLS.
    public override CredentialShape MayYield => CredentialShape.Token | CredentialShape.UsernamePassword | CredentialShape.IssuedToken;

    public override CredentialShape Yields(OAuth2ClientCredentialsSourceOptions options, bool hasUsername) =>
        hasUsername ? MayYield : CredentialShape.Token | CredentialShape.IssuedToken;

    public override ICredentialSource? Compile(OAuth2ClientCredentialsSourceOptions c, CredentialSourceContext context)
    {
        var key = context.Key;
        var errors = context.Errors;
        var start = errors.Count;
        Uri? tokenUrl = null;
        if (string.IsNullOrWhiteSpace(c.TokenUrl))
        {
            errors.Add(new(key + ":TokenUrl", "is required for an OAuth2ClientCredentials credential"));
        }
        else if (!Uri.TryCreate(c.TokenUrl, UriKind.Absolute, out tokenUrl) || tokenUrl.Scheme is not ("http" or "https") || !string.IsNullOrEmpty(tokenUrl.UserInfo))
        {
            errors.Add(new(key + ":TokenUrl", "'" + ConfigChecks.WithoutUserInfo(c.TokenUrl) + "' is not an absolute http or https URL without user info"));
        }

        if (string.IsNullOrWhiteSpace(c.ClientId))
        {
            errors.Add(new(key + ":ClientId", "is required for an OAuth2ClientCredentials credential"));
        }

        string? secretFile = null;
        var workloadAssertion = false;
        if (c.ClientAssertion is not null)
        {
            // RFC 7523 section 2.2: the workload's own token authenticates the client; no secret exists.
            if (!string.Equals(c.ClientAssertion, "WorkloadToken", StringComparison.OrdinalIgnoreCase))
            {
                errors.Add(new(key + ":ClientAssertion", "'" + c.ClientAssertion + "' is not a client assertion; expected WorkloadToken"));
            }
            else if (!context.IdentityConfigured)
            {
                errors.Add(new(key + ":ClientAssertion", "WorkloadToken needs the workload identity: configure SecretlessProxy:Identity"));
            }

            if (c.ClientSecretFile is not null)
            {
                errors.Add(new(key + ":ClientSecretFile", "give ClientSecretFile or ClientAssertion, not both"));
            }

            if (c.ClientAuth is not null)
            {
                errors.Add(new(key + ":ClientAuth", "does not apply with ClientAssertion (the assertion is sent in the body)"));
            }

            workloadAssertion = true;
        }
        else if (string.IsNullOrWhiteSpace(c.ClientSecretFile))
        {
            errors.Add(new(key + ":ClientSecretFile", "is required (or ClientAssertion: WorkloadToken): the client secret is read from a file, never from the config"));
        }
        else
        {
            secretFile = context.RequireSecretFile(c.ClientSecretFile, key + ":ClientSecretFile");
        }

        var inBody = false;
        switch (c.ClientAuth?.ToLowerInvariant())
        {
            case null or "basic":
                break;
            case "body":
                inBody = true;
                break;
            default:
                errors.Add(new(key + ":ClientAuth", "'" + c.ClientAuth + "' is not a client authentication method; expected Basic or Body"));
                break;
        }

        var (timeout, retryAttempts, retryDelay) = context.CompileFetchLimits(c);

        var defaultLifetime = ConfigChecks.Positive(c.DefaultLifetime, TimeSpan.FromMinutes(5), key + ":DefaultLifetime", errors);

        IssuerEndpoint? endpoint = null;
        if (tokenUrl is not null && errors.Count == start)
        {
            endpoint = context.CompileIssuerEndpoint("TokenUrl", tokenUrl, c, workloadAssertion ? "the workload token" : "the client id and secret");
        }

        if (errors.Count > start || endpoint is null)
        {
            return null;
        }

        var settings = new OAuth2ClientCredentialsSettings(
            tokenUrl!, c.ClientId!, secretFile, c.Scopes ?? [], inBody, c.Audience, c.Resource,
            c.Parameters ?? new Dictionary<string, string>(), defaultLifetime, timeout, retryAttempts, retryDelay, context.Username, context.UsernameFile);
        return new OAuth2ClientCredentialsSource(settings, IssuerTransport.InvokerFor(endpoint, context.TokenClient), context.Time, workloadAssertion ? context.Identity : null);
    }

    protected override OAuth2ClientCredentialsSourceOptions BindOptions(IConfigurationSection section) => section.Get<OAuth2ClientCredentialsSourceOptions>() ?? new();
}
