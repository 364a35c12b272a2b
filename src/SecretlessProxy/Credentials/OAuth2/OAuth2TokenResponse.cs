using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json;
using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// A successful answer of an OAuth2 token endpoint (RFC 6749 section 5.1; RFC 8693 section 2.2.1
/// adds <c>issued_token_type</c>), read the same way for every grant, and the error code of an
/// unsuccessful one (section 5.2). Messages name the endpoint and never echo what it sent.
/// </summary>
internal sealed class OAuth2TokenResponse
{
    private OAuth2TokenResponse(string accessToken, double? expiresIn, string? issuedTokenType)
    {
        AccessToken = accessToken;
        ExpiresIn = expiresIn;
        IssuedTokenType = issuedTokenType;
    }

    /// <summary>Secret. Never log it.</summary>
    public string AccessToken { get; }

    public double? ExpiresIn { get; }

    public string? IssuedTokenType { get; }

    /// <param name="endpoint">How messages name the endpoint, e.g. "token endpoint".</param>
    public static OAuth2TokenResponse Read(byte[] body, string endpoint)
    {
        string? accessToken = null;
        string? issuedTokenType = null;
        double? expiresIn = null;
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new CredentialFetchException(endpoint + " answered JSON that is not an object", isTransient: true);
            }

            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.NameEquals("access_token") && property.Value.ValueKind == JsonValueKind.String)
                {
                    accessToken = property.Value.GetString();
                }
                else if (property.NameEquals("issued_token_type") && property.Value.ValueKind == JsonValueKind.String)
                {
                    issuedTokenType = property.Value.GetString();
                }
                else if (property.NameEquals("expires_in"))
                {
                    // Some servers send the number as a string.
                    if (property.Value.ValueKind == JsonValueKind.Number && property.Value.TryGetDouble(out var n))
                    {
                        expiresIn = n;
                    }
                    else if (property.Value.ValueKind == JsonValueKind.String && double.TryParse(property.Value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var s))
                    {
                        expiresIn = s;
                    }
                    else
                    {
                        throw new CredentialFetchException(endpoint + " answered an expires_in that is not a number", isTransient: true);
                    }
                }
            }
        }
        catch (JsonException)
        {
            throw new CredentialFetchException(endpoint + " answered something that is not JSON", isTransient: true);
        }

        if (string.IsNullOrEmpty(accessToken))
        {
            throw new CredentialFetchException(endpoint + " answer has no access_token", isTransient: true);
        }

        return new OAuth2TokenResponse(accessToken, expiresIn, issuedTokenType);
    }

    /// <summary>The credential, living <c>expires_in</c> (capped at a year) or <paramref name="defaultLifetime"/> when absent.</summary>
    public Credential ToCredential(string endpoint, TimeSpan defaultLifetime, string? username, DateTimeOffset requestedAt)
    {
        if (ExpiresIn is { } e && (double.IsNaN(e) || e <= 0))
        {
            throw new CredentialFetchException(endpoint + " issued a token with a non-positive expires_in", isTransient: false);
        }

        SecretFileReader.EnsurePrintable(AccessToken, "the access token");
        var lifetime = ExpiresIn is { } seconds ? TimeSpan.FromSeconds(Math.Min(seconds, TimeSpan.FromDays(365).TotalSeconds)) : defaultLifetime;
        return new Credential(AccessToken, username, requestedAt, requestedAt + lifetime);
    }

    /// <summary>
    /// The section 5.2 <c>error</c> code when it is one of <paramref name="knownCodes"/> (a fixed
    /// vocabulary, safe to report); the free-text <c>error_description</c> is never read.
    /// </summary>
    public static string? TryReadErrorCode(byte[] body, FrozenSet<string> knownCodes)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object &&
                doc.RootElement.TryGetProperty("error", out var error) &&
                error.ValueKind == JsonValueKind.String &&
                error.GetString() is { } code &&
                knownCodes.Contains(code))
            {
                return code;
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }
}
