namespace SecretlessProxy.Governance;

/// <summary>A policy's <c>Caller</c> condition as the inventory shows it; a null list does not constrain.</summary>
internal sealed record InventoryCaller(IReadOnlyList<int>? Uids, IReadOnlyList<string>? Executables, IReadOnlyList<string>? ExecutableSha256);
