using System.Text.RegularExpressions;
using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary><c>Source: AwsWebIdentity</c>: temporary AWS keys for the workload token, which can only sign requests.</summary>
internal sealed partial class AwsWebIdentitySourceKind : CredentialSourceKind<AwsWebIdentitySourceOptions>
{
    // STS limits for AssumeRoleWithWebIdentity's DurationSeconds (the role's own maximum may be lower;
    // STS then answers ValidationError, reported at fetch time).
    private static readonly TimeSpan MinSessionDuration = TimeSpan.FromMinutes(15);
    private static readonly TimeSpan MaxSessionDuration = TimeSpan.FromHours(12);

    public override string Name => "AwsWebIdentity";

    public override CredentialShape MayYield => CredentialShape.SigningKeys;

    public override CredentialShape Yields(AwsWebIdentitySourceOptions options, bool hasUsername) => CredentialShape.SigningKeys;

    public override ICredentialSource? Compile(AwsWebIdentitySourceOptions c, CredentialSourceContext context)
    {
        var key = context.Key;
        var errors = context.Errors;
        var start = errors.Count;
        if (!context.IdentityConfigured)
        {
            errors.Add(new(key + ":Source", "AwsWebIdentity needs the workload identity: configure SecretlessProxy:Identity"));
        }

        if (string.IsNullOrWhiteSpace(c.RoleArn))
        {
            errors.Add(new(key + ":RoleArn", "is required for an AwsWebIdentity credential (arn:aws:iam::123456789012:role/name)"));
        }
        else if (!RoleArnPattern().IsMatch(c.RoleArn))
        {
            errors.Add(new(key + ":RoleArn", "'" + c.RoleArn + "' is not an IAM role ARN (arn:aws:iam::123456789012:role/name, or another partition such as arn:aws-cn)"));
        }

        var sessionName = c.RoleSessionName ?? "secretless-proxy";
        if (!RoleSessionNamePattern().IsMatch(sessionName))
        {
            errors.Add(new(key + ":RoleSessionName", "'" + sessionName + "' is not a role session name: 2 to 64 of the characters A-Z a-z 0-9 _ + = , . @ -"));
        }

        Uri? stsUrl = null;
        if (c.StsUrl is not null &&
            (!Uri.TryCreate(c.StsUrl, UriKind.Absolute, out stsUrl) || stsUrl.Scheme is not ("http" or "https") || string.IsNullOrEmpty(stsUrl.Host) ||
             !string.IsNullOrEmpty(stsUrl.UserInfo) || !string.IsNullOrEmpty(stsUrl.Query) || !string.IsNullOrEmpty(stsUrl.Fragment)))
        {
            errors.Add(new(key + ":StsUrl", "'" + ConfigChecks.WithoutUserInfo(c.StsUrl) + "' is not an absolute http or https URL without user info, query or fragment"));
            stsUrl = null;
        }
        else if (stsUrl is { Scheme: "http" } && !Loopback.IsLoopbackHost(stsUrl) && c.UnixSocket is null)
        {
            // The call carries the workload token: in the clear only to this host.
            errors.Add(new(key + ":StsUrl", "'" + stsUrl + "' must be https (http only for loopback): the request carries the workload token"));
            stsUrl = null;
        }

        if (c.Region is null)
        {
            if (c.StsUrl is null)
            {
                errors.Add(new(key + ":Region", "is required for an AwsWebIdentity credential (the STS region, e.g. eu-west-1), unless StsUrl is given"));
            }
        }
        else if (!AwsRegionPattern().IsMatch(c.Region))
        {
            errors.Add(new(key + ":Region", "'" + c.Region + "' is not an AWS region name such as eu-west-1"));
        }

        var duration = c.Duration ?? TimeSpan.FromHours(1);
        if (duration < MinSessionDuration || duration > MaxSessionDuration)
        {
            errors.Add(new(key + ":Duration", "must be between 00:15:00 and 12:00:00 (the session durations STS allows)"));
        }
        else if (duration.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            errors.Add(new(key + ":Duration", "must be whole seconds (STS takes DurationSeconds)"));
        }

        if (context.Username is not null || context.UsernameFile is not null)
        {
            errors.Add(new(key + (context.Username is not null ? ":Username" : ":UsernameFile"), "does not apply to an AwsWebIdentity credential (it signs requests; there is no user name)"));
        }

        var (timeout, retryAttempts, retryDelay) = context.CompileFetchLimits(c);


        // Without StsUrl the SDK picks the regional endpoint (https, on the network); only the
        // configured URL can be on this host.
        var http = context.TokenClient;
        if (errors.Count == start && stsUrl is not null)
        {
            var endpoint = context.CompileIssuerEndpoint("StsUrl", stsUrl, c, "the workload token (which it could present to STS itself)");
            http = endpoint is null ? http : IssuerTransport.InvokerFor(endpoint, context.TokenClient);
        }
        else if (c.StsUrl is null && (c.UnixSocket is not null || c.PinnedCertificateSha256 is not null || c.AllowLoopbackSquatting is not null))
        {
            errors.Add(new(key + ":StsUrl", "is required with " + IssuerEndpointRules.Keys + ": they say how a configured STS endpoint is reached"));
        }

        if (errors.Count > start)
        {
            return null;
        }

        var settings = new AwsWebIdentitySettings(c.RoleArn!, sessionName, c.Region, stsUrl, duration, timeout, retryAttempts, retryDelay);
        return new AwsWebIdentityCredentialSource(settings, http, context.Time, context.Identity);
    }

    protected override AwsWebIdentitySourceOptions BindOptions(IConfigurationSection section) => section.Get<AwsWebIdentitySourceOptions>() ?? new();

    // arn:<partition>:iam::<account>:role/<path/>name (IAM: path of printable ASCII, name up to 64 of [\w+=,.@-]).
    [GeneratedRegex(@"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/([\x21-\x7E]*/)?[A-Za-z0-9_+=,.@-]{1,64}$", RegexOptions.CultureInvariant)]
    private static partial Regex RoleArnPattern();

    // STS RoleSessionName: [\w+=,.@-]*, 2 to 64 characters.
    [GeneratedRegex(@"^[A-Za-z0-9_+=,.@-]{2,64}$", RegexOptions.CultureInvariant)]
    private static partial Regex RoleSessionNamePattern();

    // eu-west-1, us-gov-west-1, cn-north-1, us-isob-east-1, ap-southeast-4.
    [GeneratedRegex(@"^[a-z]{2}(-[a-z]+)+-[0-9]+$", RegexOptions.CultureInvariant)]
    private static partial Regex AwsRegionPattern();
}
