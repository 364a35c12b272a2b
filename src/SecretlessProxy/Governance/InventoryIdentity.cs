namespace SecretlessProxy.Governance;

/// <summary>A policy's <c>Identity</c> condition as the inventory shows it; a null list does not constrain.</summary>
internal sealed record InventoryIdentity(IReadOnlyList<string>? Subjects, IReadOnlyList<string>? Issuers, IReadOnlyList<string>? Audiences, IReadOnlyList<string>? Namespaces, IReadOnlyList<string>? ServiceAccounts);
