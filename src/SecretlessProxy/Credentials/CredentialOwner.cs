namespace SecretlessProxy.Credentials;

/// <summary>
/// Who answers for a credential (its <c>Owner</c> keys): the business owner who accepts its risk,
/// the technical owner who rotates and revokes it, and where to reach them. Names, not secrets.
/// </summary>
internal sealed record CredentialOwner(string? Business, string? Technical, string? Contact);
