using SecretlessProxy.Core;

namespace SecretlessProxy.Configuration;

/// <summary>
/// What a credential yields, as the policies and listeners that name it check it: known from its
/// keys alone, so it holds even while the credential itself has errors.
/// </summary>
/// <param name="Source">The source kind's name, for messages.</param>
internal sealed record DeclaredCredential(string Source, CredentialShape Yields)
{
    /// <summary>The one server its value is minted for, when it is tied to one (<see cref="Credentials.CredentialAudience"/>).</summary>
    public Credentials.CredentialAudience? Audience { get; init; }
}
