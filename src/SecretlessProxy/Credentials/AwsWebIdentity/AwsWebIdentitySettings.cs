namespace SecretlessProxy.Credentials;

/// <summary>
/// The validated settings of an AWS web-identity source. <see cref="StsUrl"/> is null for the
/// regional endpoint of <see cref="Region"/>; one of the two is always set.
/// </summary>
internal sealed record AwsWebIdentitySettings(
    string RoleArn,
    string RoleSessionName,
    string? Region,
    Uri? StsUrl,
    TimeSpan Duration,
    TimeSpan Timeout,
    int RetryAttempts,
    TimeSpan RetryDelay);
