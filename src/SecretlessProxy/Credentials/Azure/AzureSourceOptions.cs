namespace SecretlessProxy.Credentials;

/// <summary>The keys of an <c>AzureWorkloadIdentity</c> or <c>AzureManagedIdentity</c> credential.</summary>
internal sealed class AzureSourceOptions : IssuerSourceOptions
{
    /// <summary>The Microsoft Entra tenant (workload identity only).</summary>
    public string? TenantId { get; set; }

    /// <summary>The application (workload identity) or the user-assigned identity (managed identity; omitted for the system-assigned one).</summary>
    public string? ClientId { get; set; }

    /// <summary>The Microsoft Entra authority (workload identity only). Default https://login.microsoftonline.com/.</summary>
    public string? AuthorityHost { get; set; }

    public string[]? Scopes { get; set; }

    /// <summary>Extra CA certificates the token endpoint's chain may end in.</summary>
    public string? CaFile { get; set; }

    // Keys of the OAuth2 sources, bound only to be refused by name: Azure.Identity talks to Microsoft Entra itself.
    public string? TokenUrl { get; set; }

    public string? ClientSecretFile { get; set; }

    public string? ClientAssertion { get; set; }

    public string? ClientAuth { get; set; }
}
