using SecretlessProxy.Credentials;

namespace SecretlessProxy.Governance;

/// <summary>
/// One credential in the inventory: where it is issued, who owns it, how it rotates and is
/// revoked, everywhere policies let it go (<see cref="Reach"/>) and what widens that reach.
/// </summary>
/// <param name="Rank">1 for the widest reach.</param>
/// <param name="ReachScore">The sum of <see cref="InventoryReach.Score"/> (see <see cref="ReachScore"/>).</param>
internal sealed record InventoryEntry(
    int Rank,
    string Name,
    string Source,
    string IssuingSystem,
    CredentialOwner? Owner,
    string Rotation,
    string Lifetime,
    string Revocation,
    int ReachScore,
    IReadOnlyList<InventoryReach> Reach,
    IReadOnlyList<InventoryFinding> Findings)
{
    /// <summary>Run time only: how long the value in the cache was issued for (its expiry minus when it was fetched); null when it has no expiry or none is cached.</summary>
    public string? ObservedLifetime { get; init; }

    /// <summary>Run time only: what the credential was actually used for since the proxy started, most used first.</summary>
    public IReadOnlyList<InventoryUse>? Uses { get; init; }
}
