namespace SecretlessProxy.Core;

/// <summary>
/// A credential value with its lifetime. It cannot be printed: <see cref="ToString"/> says <c>***</c>, so
/// an accidental log line, exception message or debugger display leaks nothing. Only injectors read
/// <see cref="Secret"/>.
/// </summary>
internal sealed class Credential
{
    public Credential(string secret, string? username, DateTimeOffset obtainedAt, DateTimeOffset? expiresAt, object? sourceStamp = null, SigningKeys? signingKeys = null)
    {
        SigningKeys = signingKeys;
        ArgumentException.ThrowIfNullOrEmpty(secret);
        Secret = secret;
        Username = username;
        ObtainedAt = obtainedAt;
        ExpiresAt = expiresAt;
        SourceStamp = sourceStamp;
    }

    /// <summary>The secret value. Never log, trace or return it.</summary>
    internal string Secret { get; }

    /// <summary>A user name is not a secret (for Basic injection and database logins).</summary>
    public string? Username { get; }

    public DateTimeOffset ObtainedAt { get; }

    /// <summary>Null for credentials that do not expire (a file).</summary>
    public DateTimeOffset? ExpiresAt { get; }

    /// <summary>What the source needs to tell whether this value is stale (a file's identity and mtime).</summary>
    internal object? SourceStamp { get; }

    /// <summary>Signing keys (an access key id, its secret and a session token), for sources that yield them; null otherwise. <see cref="Secret"/> is then the secret key.</summary>
    internal SigningKeys? SigningKeys { get; }

    public override string ToString() => "Credential(***)";
}
