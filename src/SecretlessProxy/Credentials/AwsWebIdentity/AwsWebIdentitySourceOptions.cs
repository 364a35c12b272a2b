namespace SecretlessProxy.Credentials;

/// <summary>The keys of an <c>AwsWebIdentity</c> credential (STS AssumeRoleWithWebIdentity).</summary>
internal sealed class AwsWebIdentitySourceOptions : IssuerSourceOptions
{
    public string? RoleArn { get; set; }

    public string? RoleSessionName { get; set; }

    /// <summary>The STS region; not needed when <see cref="StsUrl"/> is given.</summary>
    public string? Region { get; set; }

    public string? StsUrl { get; set; }

    /// <summary>The session duration STS is asked for. Default 1 hour.</summary>
    public TimeSpan? Duration { get; set; }
}
