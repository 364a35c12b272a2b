namespace SecretlessProxy.Credentials;

/// <summary>The validated, immutable timing settings of one credential; the source holds the rest.</summary>
internal sealed record CredentialDefinition(
    string Name,
    ICredentialSource Source,
    double RefreshAt,
    TimeSpan ExpirySkew,
    TimeSpan MaxBackoff)
{
    /// <summary>
    /// The credential's configuration as written (every key and value under its section, sorted):
    /// a reload keeps the cached value only when this is unchanged. Holds paths and names, never a
    /// secret (the schema has no place for one); internal, never emitted.
    /// </summary>
    public string Fingerprint { get; init; } = string.Empty;

    /// <summary>Who answers for the credential (<c>Owner</c>); null when the configuration names nobody.</summary>
    public CredentialOwner? Owner { get; init; }
}
