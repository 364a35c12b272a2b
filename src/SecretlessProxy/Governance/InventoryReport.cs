namespace SecretlessProxy.Governance;

/// <summary>
/// The credential inventory of one configuration: every credential, worst reach first. From a
/// configuration alone (<c>inventory</c>) the run-time fields are null; the admin endpoint's
/// <c>GET /inventory</c> adds what was used since the proxy started.
/// </summary>
internal sealed record InventoryReport(IReadOnlyList<InventoryEntry> Credentials)
{
    /// <summary>Run time only: when counting uses started.</summary>
    public DateTimeOffset? UsesSince { get; init; }

    /// <summary>Run time only: uses beyond the use log's bound, counted but not itemised.</summary>
    public long? UsesNotItemised { get; init; }
}
