namespace SecretlessProxy.Runtime;

/// <summary>
/// How often one credential went to one destination for one caller since the proxy started, and
/// when last. <see cref="Destination"/> is <c>scheme://host:port</c> (a database's name appended);
/// request paths are left out, so the set stays as small as the policies allow.
/// </summary>
internal sealed record CredentialUse(string Credential, string Policy, string Listener, string Destination, string Caller, string? Identity, long Count, DateTimeOffset LastUse);
