namespace SecretlessProxy.Configuration;

/// <summary>A credential's <c>Owner</c> keys: who answers for it. Required for every credential under <c>RequireOwners: true</c>.</summary>
internal sealed class CredentialOwnerOptions
{
    /// <summary>The business owner, who accepts the risk the credential carries.</summary>
    public string? Business { get; set; }

    /// <summary>The technical owner, who rotates and revokes it.</summary>
    public string? Technical { get; set; }

    /// <summary>Where to reach the owners (a team channel, an address, an on-call rota).</summary>
    public string? Contact { get; set; }
}
