using System.Text.RegularExpressions;
using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// <c>Source: AwsRdsAuthToken</c>: an RDS / Aurora IAM database authentication token for one endpoint
/// and database user, signed with the keys of another credential (<c>SigningCredential</c>); a
/// database listener logs in with it as the user's password, over verified TLS only.
/// </summary>
internal sealed partial class AwsRdsAuthTokenSourceKind : CredentialSourceKind<AwsRdsAuthTokenSourceOptions>
{
    public override string Name => "AwsRdsAuthToken";

    public override CredentialShape MayYield => CredentialShape.Token | CredentialShape.UsernamePassword | CredentialShape.IssuedToken;

    public override CredentialShape Yields(AwsRdsAuthTokenSourceOptions options, bool hasUsername) =>
        hasUsername ? MayYield : CredentialShape.Token | CredentialShape.IssuedToken;

    public override CredentialAudience? Audience(AwsRdsAuthTokenSourceOptions options) => ParseEndpoint(options.Endpoint);

    public override ICredentialSource? Compile(AwsRdsAuthTokenSourceOptions c, CredentialSourceContext context)
    {
        var key = context.Key;
        var errors = context.Errors;
        var start = errors.Count;

        var signing = context.ReferenceCredential("SigningCredential", c.SigningCredential, CredentialShape.SigningKeys, "the AWS keys that sign the token");

        var endpoint = ParseEndpoint(c.Endpoint);
        if (c.Endpoint is null)
        {
            errors.Add(new(key + ":Endpoint", "is required for an AwsRdsAuthToken credential: the database endpoint as host:port (the token is signed for both)"));
        }
        else if (endpoint is null)
        {
            errors.Add(new(key + ":Endpoint", "'" + c.Endpoint + "' is not host:port with a DNS name and a port (mydb.abc123.eu-west-1.rds.amazonaws.com:5432)"));
        }

        var region = c.Region;
        if (region is null)
        {
            if (endpoint is not null && RdsHostPattern().Match(endpoint.Host) is { Success: true } inferred)
            {
                region = inferred.Groups["region"].Value;
            }
            else if (endpoint is not null)
            {
                errors.Add(new(key + ":Region", "is required for an AwsRdsAuthToken credential whose Endpoint is not an *.region.rds.amazonaws.com name"));
            }
        }
        else if (!RegionPattern().IsMatch(region))
        {
            errors.Add(new(key + ":Region", "'" + region + "' is not an AWS region name such as eu-west-1"));
        }

        if (context.UsernameFile is not null)
        {
            errors.Add(new(key + ":UsernameFile", "does not apply to an AwsRdsAuthToken credential: the token is signed for one user, give it as Username"));
        }
        else if (string.IsNullOrWhiteSpace(context.Username))
        {
            errors.Add(new(key + ":Username", "is required for an AwsRdsAuthToken credential: the database user the token is signed for"));
        }

        if (errors.Count > start || signing is null || endpoint is null || region is null)
        {
            return null;
        }

        return new AwsRdsAuthTokenSource(new AwsRdsAuthTokenSettings(endpoint, region, context.Username!), signing, context.Time);
    }

    protected override AwsRdsAuthTokenSourceOptions BindOptions(IConfigurationSection section) => section.Get<AwsRdsAuthTokenSourceOptions>() ?? new();

    /// <summary><c>host:port</c> with a DNS name (RDS endpoints are names) and an explicit port; null otherwise.</summary>
    private static CredentialAudience? ParseEndpoint(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Contains("://", StringComparison.Ordinal) || text.Contains('@') || text.Contains('/'))
        {
            return null;
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            return null;
        }

        var host = text[..colon];
        return Uri.CheckHostName(host) is UriHostNameType.Dns or UriHostNameType.IPv4 ? new CredentialAudience(host.ToLowerInvariant(), port) : null;
    }

    // mydb.abc123.eu-west-1.rds.amazonaws.com, and the .com.cn partition.
    [GeneratedRegex(@"\.(?<region>[a-z]{2}(-[a-z]+)+-[0-9]+)\.rds\.amazonaws\.com(\.cn)?$", RegexOptions.CultureInvariant)]
    private static partial Regex RdsHostPattern();

    [GeneratedRegex(@"^[a-z]{2}(-[a-z]+)+-[0-9]+$", RegexOptions.CultureInvariant)]
    private static partial Regex RegionPattern();
}
