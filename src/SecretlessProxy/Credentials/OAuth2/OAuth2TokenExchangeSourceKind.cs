using SecretlessProxy.Core;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Credentials;

/// <summary><c>Source: OAuth2TokenExchange</c>: the workload token exchanged for an access token (RFC 8693).</summary>
internal sealed class OAuth2TokenExchangeSourceKind : CredentialSourceKind<OAuth2TokenExchangeSourceOptions>
{
    // Form fields the source writes itself: a Parameters entry may not replace them (the subject
    // token above all: it must be the workload's, never a value from the config).
    private static readonly HashSet<string> ReservedParameters = new(StringComparer.OrdinalIgnoreCase)
    {
        "grant_type", "subject_token", "subject_token_type", "audience", "scope", "resource", "requested_token_type",
        "client_id", "client_secret", "client_assertion", "client_assertion_type", "actor_token", "actor_token_type",
    };

    public override string Name => "OAuth2TokenExchange";

    // An access token minted for the workload: as a database password only over verified TLS.
    public override CredentialShape MayYield => CredentialShape.Token | CredentialShape.UsernamePassword | CredentialShape.IssuedToken;

    public override CredentialShape Yields(OAuth2TokenExchangeSourceOptions options, bool hasUsername) =>
        hasUsername ? MayYield : CredentialShape.Token | CredentialShape.IssuedToken;

    public override ICredentialSource? Compile(OAuth2TokenExchangeSourceOptions c, CredentialSourceContext context)
    {
        var key = context.Key;
        var errors = context.Errors;
        var start = errors.Count;
        if (!context.IdentityConfigured)
        {
            errors.Add(new(key + ":Source", "OAuth2TokenExchange needs the workload identity: configure SecretlessProxy:Identity (its token is the subject token)"));
        }

        Uri? tokenUrl = null;
        if (string.IsNullOrWhiteSpace(c.TokenUrl))
        {
            errors.Add(new(key + ":TokenUrl", "is required for an OAuth2TokenExchange credential (for example https://sts.googleapis.com/v1/token)"));
        }
        else if (!Uri.TryCreate(c.TokenUrl, UriKind.Absolute, out tokenUrl) || !SigningKeySource.IsTrustworthyKeyUrl(tokenUrl) || !string.IsNullOrEmpty(tokenUrl.UserInfo))
        {
            // The request carries the workload token, which anyone who reads it can exchange as well.
            errors.Add(new(key + ":TokenUrl", "'" + ConfigChecks.WithoutUserInfo(c.TokenUrl) + "' is not an absolute https URL without user info (http only for loopback): the workload token would travel in the clear"));
        }

        // Keys of the client-credentials grant that have no meaning here: say so rather than ignore them.
        if (c.ClientSecretFile is not null)
        {
            errors.Add(new(key + ":ClientSecretFile", "does not apply to OAuth2TokenExchange: the workload token is the only credential presented"));
        }

        if (c.ClientAssertion is not null)
        {
            errors.Add(new(key + ":ClientAssertion", "does not apply to OAuth2TokenExchange: the workload token is sent as the subject token"));
        }

        if (c.ClientAuth is not null)
        {
            errors.Add(new(key + ":ClientAuth", "does not apply to OAuth2TokenExchange (ClientId, if given, is sent as client_id)"));
        }

        if (c.ClientId is not null && string.IsNullOrWhiteSpace(c.ClientId))
        {
            errors.Add(new(key + ":ClientId", "must not be empty"));
        }

        var subjectTokenType = c.SubjectTokenType ?? OAuth2TokenExchangeSource.JwtTokenType;
        if (!IsTokenTypeUri(subjectTokenType))
        {
            errors.Add(new(key + ":SubjectTokenType", "'" + subjectTokenType + "' is not a token type URI (RFC 8693 section 3), e.g. " + OAuth2TokenExchangeSource.JwtTokenType));
        }

        if (c.RequestedTokenType is not null && !IsTokenTypeUri(c.RequestedTokenType))
        {
            errors.Add(new(key + ":RequestedTokenType", "'" + c.RequestedTokenType + "' is not a token type URI (RFC 8693 section 3), e.g. urn:ietf:params:oauth:token-type:access_token"));
        }

        for (var i = 0; i < (c.Scopes?.Length ?? 0); i++)
        {
            // RFC 6749 section 3.3: scope tokens are joined with spaces, so one may not hold a space.
            if (string.IsNullOrWhiteSpace(c.Scopes![i]) || c.Scopes[i].Any(char.IsWhiteSpace))
            {
                errors.Add(new(key + ":Scopes:" + i, "'" + c.Scopes[i] + "' is not a scope: scopes hold no spaces"));
            }
        }

        foreach (var name in c.Parameters?.Keys ?? Enumerable.Empty<string>())
        {
            if (ReservedParameters.Contains(name))
            {
                errors.Add(new(key + ":Parameters:" + name, "is set by the source itself and cannot be given as an extra parameter"));
            }
        }

        var (timeout, retryAttempts, retryDelay) = context.CompileFetchLimits(c);

        var defaultLifetime = ConfigChecks.Positive(c.DefaultLifetime, TimeSpan.FromMinutes(5), key + ":DefaultLifetime", errors);

        IssuerEndpoint? endpoint = null;
        if (errors.Count == start)
        {
            endpoint = context.CompileIssuerEndpoint("TokenUrl", tokenUrl!, c, "the workload token (the subject token, which it could exchange itself)");
        }

        if (errors.Count > start || endpoint is null)
        {
            return null;
        }

        var settings = new OAuth2TokenExchangeSource.Settings(
            tokenUrl!, subjectTokenType, c.Audience, c.Scopes ?? [], c.Resource, c.RequestedTokenType, c.ClientId,
            c.Parameters ?? new Dictionary<string, string>(), defaultLifetime, timeout, retryAttempts, retryDelay, context.Username, context.UsernameFile);
        return new OAuth2TokenExchangeSource(settings, IssuerTransport.InvokerFor(endpoint, context.TokenClient), context.Time, context.Identity);
    }

    protected override OAuth2TokenExchangeSourceOptions BindOptions(IConfigurationSection section) => section.Get<OAuth2TokenExchangeSourceOptions>() ?? new();

    private static bool IsTokenTypeUri(string value) => Uri.TryCreate(value, UriKind.Absolute, out _) && !value.Any(char.IsWhiteSpace);
}
