namespace SecretlessProxy.Credentials;

/// <summary>The validated, immutable timing settings of one credential; the source holds the rest.</summary>
public sealed record CredentialDefinition(
    string Name,
    ICredentialSource Source,
    double RefreshAt,
    TimeSpan ExpirySkew,
    TimeSpan MaxBackoff);
