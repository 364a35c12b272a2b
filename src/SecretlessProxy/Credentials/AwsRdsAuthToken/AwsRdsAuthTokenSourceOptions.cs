namespace SecretlessProxy.Credentials;

/// <summary>The keys of an <c>AwsRdsAuthToken</c> credential (RDS and Aurora IAM database authentication).</summary>
internal sealed class AwsRdsAuthTokenSourceOptions
{
    /// <summary>The credential whose AWS keys sign the token (one that yields signing keys, such as an <c>AwsWebIdentity</c> one).</summary>
    public string? SigningCredential { get; set; }

    /// <summary>The database endpoint the token is for, <c>host:port</c>, as the listener's <c>Upstream</c> names it.</summary>
    public string? Endpoint { get; set; }

    /// <summary>The region the token is signed for; inferred from an <c>*.region.rds.amazonaws.com</c> endpoint.</summary>
    public string? Region { get; set; }
}
