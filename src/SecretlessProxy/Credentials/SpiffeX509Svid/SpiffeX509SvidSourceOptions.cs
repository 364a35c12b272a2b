namespace SecretlessProxy.Credentials;

/// <summary>The keys of a <c>SpiffeX509Svid</c> credential: the workload's X.509-SVID from the SPIFFE Workload API.</summary>
internal sealed class SpiffeX509SvidSourceOptions
{
    /// <summary>The agent's socket (<c>unix:///path</c> or a path); default <c>SPIFFE_ENDPOINT_SOCKET</c>.</summary>
    public string? Socket { get; set; }

    /// <summary>Which of the workload's SPIFFE IDs to present when the agent issues several; the first otherwise.</summary>
    public string? SpiffeId { get; set; }
}
