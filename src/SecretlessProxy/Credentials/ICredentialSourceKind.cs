using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// One kind of credential source: the <c>Source</c> value of a credential, registered in
/// <see cref="CredentialSourceRegistry"/>. It reads its own keys, says what it yields, validates
/// and builds; nothing else needs to know which kind a credential is.
/// </summary>
internal interface ICredentialSourceKind
{
    /// <summary>The <c>Source</c> value that selects it (<c>Vault</c>), matched ignoring case.</summary>
    string Name { get; }

    /// <summary>Every shape a source of this kind yields under some settings.</summary>
    CredentialShape MayYield { get; }

    /// <summary>
    /// Binds this kind's keys from the credential's section. A value the binder cannot convert
    /// throws <see cref="InvalidOperationException"/>, whose message names the key and the type.
    /// </summary>
    BoundCredentialSource Bind(IConfigurationSection section);
}
