using SecretlessProxy.Core;
using SecretlessProxy.Injection;

namespace SecretlessProxy.Configuration;

internal sealed partial class SnapshotCompiler
{
    /// <param name="matchHosts">The policy's <c>Match:Hosts</c>: when Service or Region is omitted, each must be a standard AWS host name it can be inferred from.</param>
    /// <param name="credential">What the policy's credential yields; null when it names none (or an unknown one, already reported).</param>
    private AwsSigV4Injector? CompileAwsSigV4(string key, AwsSigV4Options options, DeclaredCredential? credential, IReadOnlyList<string>? matchHosts, TimeProvider time, List<ConfigError> errors)
    {
        var sigKey = key + ":AwsSigV4";
        var start = errors.Count;
        if (credential is not null && !credential.Yields.HasFlag(CredentialShape.SigningKeys))
        {
            // Only temporary AWS keys can sign; any other credential's secret is not a signing key.
            errors.Add(new(sigKey, "signs with temporary AWS keys: the policy's credential must have Source " + _sources.NamesYielding(CredentialShape.SigningKeys)));
        }

        var service = options.Service;
        if (service is not null && !AwsHostNames.IsServiceName(service))
        {
            errors.Add(new(sigKey + ":Service", "'" + service + "' is not an AWS signing name (lower-case letters, digits and dashes, e.g. s3, sqs, execute-api)"));
        }

        var region = options.Region;
        if (region is not null && !AwsHostNames.IsRegion(region))
        {
            errors.Add(new(sigKey + ":Region", "'" + region + "' is not an AWS region (e.g. eu-west-1)"));
        }

        if ((service is null || region is null) && matchHosts is not null)
        {
            for (var i = 0; i < matchHosts.Count; i++)
            {
                if (!AwsHostNames.TryInfer(matchHosts[i], out _, out _))
                {
                    errors.Add(new(sigKey, "cannot infer " + (service is null ? region is null ? "Service and Region" : "Service" : "Region") + " from host '" + matchHosts[i] + "' (Match:Hosts:" + i + "), which is not a standard AWS endpoint name: set them"));
                }
            }
        }

        var maxBodyBytes = options.MaxBodyBytes ?? AwsSigV4Injector.DefaultMaxBodyBytes;
        if (maxBodyBytes < 1)
        {
            errors.Add(new(sigKey + ":MaxBodyBytes", "must be at least 1"));
        }

        if (options.SignPayload == false && service is not null && !AwsSigV4Injector.IsS3Family(service))
        {
            errors.Add(new(sigKey + ":SignPayload", "false (UNSIGNED-PAYLOAD) is accepted by S3 only; '" + service + "' needs the payload signed"));
        }

        if (options.PathStyle == true && matchHosts is not null)
        {
            for (var i = 0; i < matchHosts.Count; i++)
            {
                // A virtual-hosted AWS name puts the bucket in the host: reading the path as bucket/key there would check the wrong thing.
                if (AwsHostNames.TryGetS3Bucket(matchHosts[i].TrimStart('*', '.'), out var bucket) && (bucket is not null || matchHosts[i].StartsWith('*')))
                {
                    errors.Add(new(sigKey + ":PathStyle", "host '" + matchHosts[i] + "' (Match:Hosts:" + i + ") is a virtual-hosted S3 name, where the bucket is in the host, not the path"));
                }
            }
        }

        return errors.Count > start ? null : new AwsSigV4Injector(service, region, options.SignPayload, maxBodyBytes, time, options.PathStyle == true);
    }
}
