using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.Signing;
using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// An RDS / Aurora IAM authentication token: the request <c>GET https://host:port/?Action=connect&amp;DBUser=user</c>
/// presigned for the <c>rds-db</c> service (SigV4 query signing, 15 minutes), without its scheme, as
/// the database expects it for the password. Signed locally by AWSSDK.Core's
/// <see cref="AWSSigV4Signer.Presign"/> with the keys of another credential (the
/// <see cref="CredentialReference"/>), so one STS session serves every use of the workload's role;
/// nothing is sent to AWS to make it. The token is valid until the earlier of its 15 minutes and
/// the keys' own expiry (a presigned request dies with its session).
/// </summary>
internal sealed class AwsRdsAuthTokenSource : ICredentialSource
{
    /// <summary>What RDS accepts: a token is valid for 15 minutes after it is signed.</summary>
    public static readonly TimeSpan TokenLifetime = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Keys closer than this to their expiry are renewed before signing: a token that dies with them a
    /// moment later is not worth caching.
    /// </summary>
    public static readonly TimeSpan MinimumKeyLifetime = TimeSpan.FromMinutes(1);

    private const string SigningName = "rds-db";

    private readonly AwsRdsAuthTokenSettings _settings;
    private readonly CredentialReference _signing;
    private readonly TimeProvider _time;

    public AwsRdsAuthTokenSource(AwsRdsAuthTokenSettings settings, CredentialReference signing, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(signing);
        _settings = settings;
        _signing = signing;
        _time = time;
    }

    public string Kind => "AwsRdsAuthToken";

    public IReadOnlyList<CredentialReference> References => [_signing];

    public CredentialSourceDescription Describe()
    {
        var keys = _signing.Source?.Describe().IssuingSystem;
        return new(
            "AWS RDS IAM auth token for " + _settings.Endpoint + " (user " + _settings.Username + ", region " + _settings.Region + "), signed locally with credential '" + _signing.Name + "'" + (keys is null ? string.Empty : " (" + keys + ")"),
            "signed anew at RefreshAt of its lifetime, with the signing credential's current keys",
            "15 minutes (X-Amz-Expires 900), never beyond the signing keys' expiry",
            CredentialSourceDescription.DropCacheOnly + " (a token cannot be revoked: deny rds-db:connect in the role's policy, or revoke the signing credential's session)");
    }

    public async Task<Credential> FetchAsync(CancellationToken cancellationToken)
    {
        Credential signing;
        try
        {
            signing = await _signing.GetAsync(MinimumKeyLifetime, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (CredentialFetchException ex)
        {
            // Which part failed: the keys (the workload identity, STS), not the signing below.
            throw new CredentialFetchException("no AWS keys to sign the RDS auth token with: " + ex.Message, ex.IsTransient);
        }

        if (signing.SigningKeys is not { } keys)
        {
            // Compile checks the shape; a source that yields keys only sometimes would land here.
            throw new CredentialFetchException("credential '" + _signing.Name + "' gave no AWS signing keys for the RDS auth token", isTransient: false);
        }

        var signedAt = _time.GetUtcNow();
        var token = Presign(_settings, keys, signedAt);
        var expiresAt = signedAt + TokenLifetime;
        if (signing.ExpiresAt is { } keysExpire && keysExpire < expiresAt)
        {
            expiresAt = keysExpire;
        }

        return new Credential(token, _settings.Username, signedAt, expiresAt);
    }

    /// <summary>
    /// The token for <paramref name="settings"/>, signed with <paramref name="keys"/> at
    /// <paramref name="signedAt"/>: the presigned URL without <c>https://</c>, as the AWS SDKs'
    /// <c>generate_db_auth_token</c> / <c>RDSAuthTokenGenerator</c> return it.
    /// </summary>
    internal static string Presign(AwsRdsAuthTokenSettings settings, SigningKeys keys, DateTimeOffset signedAt)
    {
        var endpoint = new UriBuilder(Uri.UriSchemeHttps, settings.Endpoint.Host, settings.Endpoint.Port, "/")
        {
            Query = "Action=connect&DBUser=" + Uri.EscapeDataString(settings.Username),
        }.Uri;
        var request = new AWSSigningRequest { HttpMethod = HttpMethod.Get, RequestUri = endpoint };
        AWSCredentials credentials = keys.SessionToken is { Length: > 0 } session
            ? new SessionAWSCredentials(keys.AccessKeyId, keys.SecretAccessKey, session)
            : new BasicAWSCredentials(keys.AccessKeyId, keys.SecretAccessKey);
        var parameters = new AWSSigV4Parameters
        {
            Credentials = credentials,
            Region = RegionEndpoint.GetBySystemName(settings.Region),
            Service = SigningName,
            // The proxy's clock, not the SDK's skew-corrected one: tests pin it, and a token is
            // dated when the cache asked for it.
            SignedAt = signedAt.UtcDateTime,
        };

        var url = AWSSigV4Signer.Presign(request, parameters, TokenLifetime).Uri;

        // The signature covers the parameters in canonical (sorted) order whatever order the URL
        // lists them in; the AWS SDKs' token generators list the operation's parameters, then the
        // signing ones in the order of the SigV4 documentation, the signature last. The same order
        // here makes the token the very string those generators give for the same inputs.
        var parameterList = url.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries);
        var ordered = parameterList.Select((p, i) => (Parameter: p, Rank: Rank(p), Index: i)).OrderBy(p => p.Rank).ThenBy(p => p.Index).Select(p => p.Parameter);
        return settings.Endpoint + url.AbsolutePath + "?" + string.Join('&', ordered);
    }

    private static readonly string[] ParameterOrder =
    [
        "Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
    ];

    private static int Rank(string parameter)
    {
        var name = parameter.Split('=', 2)[0];
        var rank = Array.IndexOf(ParameterOrder, name);
        // Anything else the signer adds goes before the signature, in the signer's order.
        return rank >= 0 ? rank : ParameterOrder.Length - 1;
    }
}
