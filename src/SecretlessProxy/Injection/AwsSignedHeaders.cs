namespace SecretlessProxy.Injection;

/// <summary>
/// Which of the app's headers a SigV4 signature covers. A signature authorizes everything it covers,
/// so it covers only what qualifies the request's own target (the object or API call the policy
/// matched): never a header that makes the service act on a second resource unless that resource
/// was checked against the policy first (<see cref="SourceHeaders"/>).
/// </summary>
/// <remarks>
/// <para>Signed: <c>host</c>, <c>content-type</c>, <c>content-md5</c>, the signer's own
/// <c>x-amz-date</c>, <c>x-amz-security-token</c> and <c>x-amz-content-sha256</c>, and the
/// <c>x-amz-*</c> headers listed here, which botocore sends for S3 object and bucket calls
/// (ACL, storage class, encryption, metadata, tagging, checksums, object lock, conditional
/// bucket-owner checks), for the JSON protocol (<c>x-amz-target</c>), Lambda invoke and Glacier.</para>
/// <para>Any other <c>x-amz-*</c> header is removed, not sent unsigned: S3 refuses a request with an
/// unsigned <c>x-amz-*</c> header anyway, and an S3-compatible server that does not check would act
/// on a header nobody reviewed. Headers outside <c>x-amz-*</c> (<c>Range</c>, <c>If-Match</c>,
/// <c>Cache-Control</c>, <c>Content-Encoding</c>, <c>User-Agent</c>, trace headers) are sent
/// unsigned: they qualify the request's own target, and AWS does not require them signed.</para>
/// </remarks>
internal static class AwsSignedHeaders
{
    /// <summary>
    /// Headers that name a second object the request reads (CopyObject and UploadPartCopy read
    /// <c>x-amz-copy-source</c>; S3 Express RenameObject moves <c>x-amz-rename-source</c>). Signed only
    /// after <see cref="AwsSourceCheck"/> found them inside the policy's path prefix.
    /// </summary>
    public static readonly string[] SourceHeaders = ["x-amz-copy-source", "x-amz-rename-source"];

    private static readonly HashSet<string> Exact = new(StringComparer.OrdinalIgnoreCase)
    {
        "content-type",
        "content-md5",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-amz-copy-source",
        "x-amz-rename-source",

        // S3: what the object or bucket written gets (no second resource named).
        "x-amz-acl",
        "x-amz-storage-class",
        "x-amz-tagging",
        "x-amz-tagging-directive",
        "x-amz-metadata-directive",
        "x-amz-website-redirect-location", // stored on the object; S3 website hosting redirects its readers, nothing is read
        "x-amz-request-payer",
        "x-amz-expected-bucket-owner",
        "x-amz-source-expected-bucket-owner",
        "x-amz-mfa",
        "x-amz-bypass-governance-retention",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-trailer",
        "x-amz-decoded-content-length",
        "x-amz-object-attributes",
        "x-amz-optional-object-attributes",
        "x-amz-max-parts",
        "x-amz-part-number-marker",
        "x-amz-bucket-object-lock-enabled",
        "x-amz-bucket-object-lock-token",
        "x-amz-object-ownership",
        "x-amz-confirm-remove-self-bucket-access",
        "x-amz-skip-destination-validation",
        "x-amz-write-offset-bytes",

        // JSON protocol services (DynamoDB, SQS, KMS, ...): the operation.
        "x-amz-target",
        "x-amz-user-agent",
        "x-amz-api-version",

        // Lambda Invoke, Glacier.
        "x-amz-invocation-type",
        "x-amz-log-type",
        "x-amz-client-context",
        "x-amz-glacier-version",
        "x-amz-sha256-tree-hash",
        "x-amz-archive-description",
    };

    private static readonly string[] Prefixes =
    [
        "x-amz-meta-",
        "x-amz-server-side-encryption", // -customer-*, -aws-kms-key-id (a key IAM must let the role use), -context, -bucket-key-enabled
        "x-amz-checksum-",
        "x-amz-grant-",
        "x-amz-object-lock-",

        // Conditions and range of a source that was itself checked; without one they mean nothing.
        "x-amz-copy-source-",
        "x-amz-rename-source-",
    ];

    /// <summary>Whether the header goes into the signature (and on the wire).</summary>
    public static bool IsSigned(string name)
    {
        if (Exact.Contains(name))
        {
            return true;
        }

        foreach (var prefix in Prefixes)
        {
            if (name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>An <c>x-amz-*</c> header outside the list: removed before signing, never sent.</summary>
    public static bool IsDropped(string name) =>
        name.StartsWith("x-amz-", StringComparison.OrdinalIgnoreCase) && !IsSigned(name);
}
