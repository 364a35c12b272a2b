namespace SecretlessProxy.Governance;

/// <summary>Run time: one destination and caller a credential actually went to since the proxy started.</summary>
internal sealed record InventoryUse(string Policy, string Listener, string Destination, string Caller, string? Identity, long Count, DateTimeOffset LastUse);
