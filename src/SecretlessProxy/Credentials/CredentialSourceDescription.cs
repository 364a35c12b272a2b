namespace SecretlessProxy.Credentials;

/// <summary>
/// What a credential source says about itself for the inventory: where the value is issued, how
/// it is rotated, how long a value lives, and what revoking it does. Built from the source's
/// validated settings (host names, paths, roles, ids); never holds a secret.
/// </summary>
/// <param name="IssuingSystem">Where the value comes from: a token endpoint's host, an STS region and role, a Vault address and path, a tenant and client, a file.</param>
/// <param name="Rotation">How a new value replaces the current one.</param>
/// <param name="Lifetime">How long one value lives, as configured or as the issuer answers.</param>
/// <param name="Revocation">What <c>POST /credentials/{name}/revoke</c> does for this source, and what it cannot do.</param>
/// <param name="LongLived">The value never expires on its own (a file): it is valid until someone replaces it.</param>
internal sealed record CredentialSourceDescription(string IssuingSystem, string Rotation, string Lifetime, string Revocation, bool LongLived = false)
{
    /// <summary>For a token endpoint: its host, with the port when it is not the scheme's default.</summary>
    public static string Authority(Uri url) => url.IsDefaultPort ? url.Host : url.Host + ":" + url.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>What revoking does for a source whose values only expire: the cache forgets it, the issuer does not.</summary>
    public const string DropCacheOnly = "drops the cached value (the next request fetches a new one); the dropped value stays valid at its issuer until it expires";
}
