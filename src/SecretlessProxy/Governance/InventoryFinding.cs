namespace SecretlessProxy.Governance;

/// <summary>Something that widens a credential's blast radius: a stable <see cref="Code"/> (see <see cref="FindingCodes"/>) and what it is about.</summary>
internal sealed record InventoryFinding(string Code, string Detail);
