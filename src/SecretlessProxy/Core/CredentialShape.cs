namespace SecretlessProxy.Core;

/// <summary>
/// What a credential source hands over, so that a policy or a listener can say what it needs
/// (a signature needs signing keys, a database login a user name and password) without knowing
/// which source it is.
/// </summary>
[Flags]
internal enum CredentialShape
{
    None = 0,

    /// <summary>A secret value that can be sent as it is (a header, a query parameter).</summary>
    Token = 1,

    /// <summary>
    /// The secret comes with a user name (Basic authentication, a database login). Such a credential
    /// yields <see cref="Token"/> as well: its password can still be sent alone.
    /// </summary>
    UsernamePassword = 2,

    /// <summary>Keys that sign a request (AWS SigV4) and are never sent themselves.</summary>
    SigningKeys = 4,

    /// <summary>A TLS client certificate and its private key.</summary>
    Certificate = 8,

    /// <summary>
    /// The secret is a token an issuer minted for this workload (an OAuth2 or Entra access token, an
    /// RDS auth token), valid at any server that trusts that issuer: as a database password it goes
    /// only to a server whose certificate is verified, never to whoever answers the address.
    /// </summary>
    IssuedToken = 16,
}
