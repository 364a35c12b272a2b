namespace SecretlessProxy.Credentials;

/// <summary>
/// A credential value with its lifetime. It cannot be printed: <see cref="ToString"/> says <c>***</c>, so
/// an accidental log line, exception message or debugger display leaks nothing. Only injectors read
/// <see cref="Secret"/>.
/// </summary>
public sealed class Credential
{
    public Credential(string secret, string? username, DateTimeOffset obtainedAt, DateTimeOffset? expiresAt, object? sourceStamp = null, AwsSessionCredentials? aws = null)
    {
        Aws = aws;
        ArgumentException.ThrowIfNullOrEmpty(secret);
        Secret = secret;
        Username = username;
        ObtainedAt = obtainedAt;
        ExpiresAt = expiresAt;
        SourceStamp = sourceStamp;
    }

    /// <summary>The secret value. Never log, trace or return it.</summary>
    internal string Secret { get; }

    /// <summary>A user name is not a secret (for Basic injection and, later, database logins).</summary>
    public string? Username { get; }

    public DateTimeOffset ObtainedAt { get; }

    /// <summary>Null for credentials that do not expire (a file).</summary>
    public DateTimeOffset? ExpiresAt { get; }

    /// <summary>What the source needs to tell whether this value is stale (a file's identity and mtime).</summary>
    internal object? SourceStamp { get; }

    /// <summary>Temporary AWS keys, for SigV4 signing; null for every other source. <see cref="Secret"/> is then the secret access key.</summary>
    internal AwsSessionCredentials? Aws { get; }

    public override string ToString() => "Credential(***)";
}
