namespace SecretlessProxy.Core;

/// <summary>
/// Signing keys, what a request signer needs (for SigV4: temporary AWS keys from STS). Held inside a
/// <see cref="Credential"/> and, like it, never printed.
/// </summary>
internal sealed class SigningKeys
{
    public SigningKeys(string accessKeyId, string secretAccessKey, string? sessionToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(accessKeyId);
        ArgumentException.ThrowIfNullOrEmpty(secretAccessKey);
        AccessKeyId = accessKeyId;
        SecretAccessKey = secretAccessKey;
        SessionToken = sessionToken;
    }

    /// <summary>Not secret on its own (it names the key), but only useful with the secret.</summary>
    public string AccessKeyId { get; }

    /// <summary>Secret. Never log, trace or return it.</summary>
    internal string SecretAccessKey { get; }

    /// <summary>Secret (a bearer token for the session). Never log, trace or return it.</summary>
    internal string? SessionToken { get; }

    public override string ToString() => "SigningKeys(" + AccessKeyId + ", ***)";
}
