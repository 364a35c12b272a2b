using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Configuration;

public sealed partial class SnapshotCompiler
{
    // Form fields the source writes itself: a Parameters entry may not replace them (the subject
    // token above all: it must be the workload's, never a value from the config).
    private static readonly HashSet<string> TokenExchangeReservedParameters = new(StringComparer.OrdinalIgnoreCase)
    {
        "grant_type", "subject_token", "subject_token_type", "audience", "scope", "resource", "requested_token_type",
        "client_id", "client_secret", "client_assertion", "client_assertion_type", "actor_token", "actor_token_type",
    };

    private OAuth2TokenExchangeSource? CompileTokenExchange(string key, CredentialOptions c, string? usernameFile, bool identityConfigured, List<ConfigError> errors)
    {
        var start = errors.Count;
        if (!identityConfigured)
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
            errors.Add(new(key + ":TokenUrl", "'" + WithoutUserInfo(c.TokenUrl) + "' is not an absolute https URL without user info (http only for loopback): the workload token would travel in the clear"));
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
            if (TokenExchangeReservedParameters.Contains(name))
            {
                errors.Add(new(key + ":Parameters:" + name, "is set by the source itself and cannot be given as an extra parameter"));
            }
        }

        var retryAttempts = c.RetryAttempts ?? 2;
        if (retryAttempts is < 0 or > 10)
        {
            errors.Add(new(key + ":RetryAttempts", "must be between 0 and 10"));
        }

        var defaultLifetime = Positive(c.DefaultLifetime, TimeSpan.FromMinutes(5), key + ":DefaultLifetime", errors);
        var timeout = Positive(c.Timeout, TimeSpan.FromSeconds(10), key + ":Timeout", errors);
        var retryDelay = NonNegative(c.RetryDelay, TimeSpan.FromMilliseconds(200), key + ":RetryDelay", errors);

        IssuerEndpoint? endpoint = null;
        if (errors.Count == start)
        {
            endpoint = CompileIssuerEndpoint(key, "TokenUrl", tokenUrl!, c.UnixSocket, c.PinnedCertificateSha256, c.AllowLoopbackSquatting, "the workload token (the subject token, which it could exchange itself)", errors);
        }

        if (errors.Count > start || endpoint is null)
        {
            return null;
        }

        var settings = new OAuth2TokenExchangeSource.Settings(
            tokenUrl!, subjectTokenType, c.Audience, c.Scopes ?? [], c.Resource, c.RequestedTokenType, c.ClientId,
            c.Parameters ?? new Dictionary<string, string>(), defaultLifetime, timeout, retryAttempts, retryDelay, c.Username, usernameFile);
        return new OAuth2TokenExchangeSource(settings, IssuerTransport.InvokerFor(endpoint, _tokenClient), _time, _identity);
    }

    private static bool IsTokenTypeUri(string value) => Uri.TryCreate(value, UriKind.Absolute, out _) && !value.Any(char.IsWhiteSpace);
}
