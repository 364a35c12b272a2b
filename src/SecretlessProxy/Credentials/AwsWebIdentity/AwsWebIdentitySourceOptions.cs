namespace SecretlessProxy.Credentials;

/// <summary>The keys of an <c>AwsWebIdentity</c> credential (STS AssumeRoleWithWebIdentity).</summary>
internal sealed class AwsWebIdentitySourceOptions : IIssuerEndpointOptions
{
    public string? RoleArn { get; set; }

    public string? RoleSessionName { get; set; }

    /// <summary>The STS region; not needed when <see cref="StsUrl"/> is given.</summary>
    public string? Region { get; set; }

    public string? StsUrl { get; set; }

    /// <summary>The session duration STS is asked for. Default 1 hour.</summary>
    public TimeSpan? Duration { get; set; }

    public TimeSpan? Timeout { get; set; }

    public int? RetryAttempts { get; set; }

    public TimeSpan? RetryDelay { get; set; }

    public string? UnixSocket { get; set; }

    public string[]? PinnedCertificateSha256 { get; set; }

    public bool? AllowLoopbackSquatting { get; set; }
}
