namespace SecretlessProxy.Injection;

/// <summary>
/// Infers the SigV4 signing service and region from a standard AWS endpoint host name, so a policy
/// for <c>bucket.s3.eu-west-1.amazonaws.com</c> needs no <c>Service</c> or <c>Region</c>.
/// </summary>
/// <remarks>
/// Covers the regional forms <c>{service}.{region}.amazonaws.com</c> (also with <c>-fips</c>,
/// <c>dualstack</c> and a leading bucket or API id: <c>bucket.s3.eu-west-1</c>,
/// <c>abc123.execute-api.us-east-1</c>), the legacy S3 forms <c>s3-eu-west-1</c> and the global
/// <c>s3.amazonaws.com</c> (signed for us-east-1), and the China partition
/// (<c>amazonaws.com.cn</c>). A wildcard pattern is inferred from its fixed suffix.
/// </remarks>
internal static class AwsHostNames
{
    private static readonly string[] Suffixes = [".amazonaws.com.cn", ".amazonaws.com"];

    // Endpoints that are global but sign for one region.
    private static readonly Dictionary<string, (string Service, string Region)> GlobalEndpoints = new(StringComparer.OrdinalIgnoreCase)
    {
        ["s3"] = ("s3", "us-east-1"),
        ["s3-external-1"] = ("s3", "us-east-1"),
        ["sts"] = ("sts", "us-east-1"),
        ["iam"] = ("iam", "us-east-1"),
        ["route53"] = ("route53", "us-east-1"),
        ["cloudfront"] = ("cloudfront", "us-east-1"),
    };

    /// <summary>Signing names that differ from the endpoint prefix.</summary>
    private static readonly Dictionary<string, string> SigningNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["email"] = "ses",
        ["runtime.sagemaker"] = "sagemaker",
        ["data.iot"] = "iotdata",
        ["streams.dynamodb"] = "dynamodb",
        ["monitoring"] = "monitoring",
    };

    /// <summary>
    /// Service and region for a host name or a <c>*.suffix</c> pattern; false when the host is not a
    /// standard AWS endpoint (a custom domain, a VPC endpoint alias, a test server).
    /// </summary>
    public static bool TryInfer(string host, out string service, out string region)
    {
        service = string.Empty;
        region = string.Empty;
        if (string.IsNullOrEmpty(host))
        {
            return false;
        }

        host = host.TrimEnd('.').ToLowerInvariant();
        if (host.StartsWith("*.", StringComparison.Ordinal))
        {
            host = host[2..];
        }

        if (AwsPrefix(host) is not { Length: > 0 } prefix)
        {
            return false;
        }

        var labels = prefix.Split('.');

        // Global endpoints: s3.amazonaws.com, bucket.s3.amazonaws.com, sts.amazonaws.com.
        if (GlobalEndpoints.TryGetValue(labels[^1], out var global))
        {
            (service, region) = global;
            return true;
        }

        // Legacy S3 regional forms: s3-eu-west-1.amazonaws.com, bucket.s3-eu-west-1.amazonaws.com.
        var last = labels[^1];
        if (last.StartsWith("s3-", StringComparison.Ordinal) && IsRegion(last[3..]))
        {
            service = "s3";
            region = last[3..];
            return true;
        }

        // {…}.{service}[-fips][.dualstack].{region}.amazonaws.com
        if (labels.Length < 2 || !IsRegion(last))
        {
            return false;
        }

        var serviceIndex = labels.Length - 2;
        if (labels[serviceIndex] == "dualstack" && serviceIndex > 0)
        {
            serviceIndex--;
        }

        var name = labels[serviceIndex];
        if (name.EndsWith("-fips", StringComparison.Ordinal))
        {
            name = name[..^"-fips".Length];
        }

        if (serviceIndex > 0)
        {
            // Two-label endpoint prefixes such as runtime.sagemaker or streams.dynamodb.
            var pair = labels[serviceIndex - 1] + "." + name;
            if (SigningNames.TryGetValue(pair, out var pairName))
            {
                name = pairName;
            }
        }

        if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
        {
            return false;
        }

        service = SigningNames.GetValueOrDefault(name, name);
        region = last;
        return true;
    }

    /// <summary>
    /// Whether the host is an AWS S3 endpoint, and the bucket it names when it is virtual-hosted
    /// (<c>bucket.s3.eu-west-1.amazonaws.com</c>; null for the path-style <c>s3.eu-west-1.amazonaws.com</c>).
    /// Access points, S3 Express, Outposts and non-AWS names are not recognised: false.
    /// </summary>
    public static bool TryGetS3Bucket(string host, out string? bucket)
    {
        bucket = null;
        host = host.TrimEnd('.').ToLowerInvariant();
        if (AwsPrefix(host) is not { Length: > 0 } prefix)
        {
            return false;
        }

        var labels = prefix.Split('.');
        int service;
        if (IsS3Label(labels[^1], allowLegacyRegion: true))
        {
            // s3.amazonaws.com, s3-eu-west-1.amazonaws.com, s3-external-1.amazonaws.com
            service = labels.Length - 1;
        }
        else if (labels.Length >= 2 && IsRegion(labels[^1]) && IsS3Label(labels[^2], allowLegacyRegion: false))
        {
            service = labels.Length - 2;
        }
        else if (labels.Length >= 3 && IsRegion(labels[^1]) && labels[^2] == "dualstack" && IsS3Label(labels[^3], allowLegacyRegion: false))
        {
            service = labels.Length - 3;
        }
        else
        {
            return false;
        }

        if (service > 0)
        {
            bucket = string.Join('.', labels, 0, service);
        }

        return true;
    }

    private static bool IsS3Label(string label, bool allowLegacyRegion) =>
        label is "s3" or "s3-fips" || (allowLegacyRegion && (label == "s3-external-1" || (label.StartsWith("s3-", StringComparison.Ordinal) && IsRegion(label[3..]))));

    /// <summary><c>eu-west-1</c>, <c>us-gov-west-1</c>, <c>cn-north-1</c>, <c>ap-southeast-2</c>: letters, dashes, a trailing number.</summary>
    public static bool IsRegion(string value)
    {
        var parts = value.Split('-');
        if (parts.Length < 3 || !int.TryParse(parts[^1], out _))
        {
            return false;
        }

        for (var i = 0; i < parts.Length - 1; i++)
        {
            if (parts[i].Length == 0 || !parts[i].All(char.IsAsciiLetterLower))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A signing name as AWS spells them: lower-case letters, digits and dashes.</summary>
    public static bool IsServiceName(string value) =>
        value.Length > 0 && value.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-');

    /// <summary>The labels before an AWS domain suffix (<c>amazonaws.com</c> and its partitions), or null.</summary>
    private static string? AwsPrefix(string host)
    {
        foreach (var suffix in Suffixes)
        {
            if (host.EndsWith(suffix, StringComparison.Ordinal))
            {
                return host[..^suffix.Length];
            }
        }

        return null;
    }
}
