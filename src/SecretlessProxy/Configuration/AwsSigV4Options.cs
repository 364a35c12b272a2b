namespace SecretlessProxy.Configuration;

/// <summary><c>Inject:AwsSigV4</c>: how requests are signed with an AWS credential.</summary>
internal sealed class AwsSigV4Options
{
    /// <summary>Signing name, e.g. <c>s3</c>, <c>sqs</c>, <c>execute-api</c>; inferred from a standard AWS host name when omitted.</summary>
    public string? Service { get; set; }

    /// <summary>e.g. <c>eu-west-1</c>; inferred from a standard AWS host name when omitted.</summary>
    public string? Region { get; set; }

    /// <summary>
    /// Whether the body's SHA-256 is signed. Default: false for S3 (UNSIGNED-PAYLOAD, nothing
    /// buffered), true for other services (hashed, up to <see cref="MaxBodyBytes"/>).
    /// </summary>
    public bool? SignPayload { get; set; }

    /// <summary>Largest body hashed when the payload is signed; a larger one gets 413. Default 10 MiB.</summary>
    public long? MaxBodyBytes { get; set; }

    /// <summary>
    /// The upstream takes the bucket as the first path segment (an S3-compatible server on a custom
    /// host name), so <c>x-amz-copy-source</c> is checked as <c>/bucket/key</c> against
    /// <c>PathPrefix</c>. Without it only AWS S3 names, IP addresses and <c>localhost</c> say where
    /// the bucket is, and copy sources to any other host are refused.
    /// </summary>
    public bool? PathStyle { get; set; }
}
