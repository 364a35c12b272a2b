namespace SecretlessProxy.Configuration;

/// <summary>A policy's <c>Identity</c> condition on the workload identity's claims. Every list given must match.</summary>
internal sealed class IdentityConditionOptions
{
    public string[]? Subjects { get; set; }

    public string[]? Issuers { get; set; }

    /// <summary>At least one of the token's audiences must be listed.</summary>
    public string[]? Audiences { get; set; }

    public string[]? Namespaces { get; set; }

    public string[]? ServiceAccounts { get; set; }
}
