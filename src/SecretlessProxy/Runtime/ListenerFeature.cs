namespace SecretlessProxy.Runtime;

/// <summary>
/// Set on every connection by the listener that accepted it, so the HTTP pipeline knows which
/// listener (or the admin port) a request came through without trusting anything the client sent.
/// </summary>
internal sealed class ListenerFeature
{
    public static readonly ListenerFeature Admin = new(null);

    /// <summary>The probe endpoint (<c>Admin:ProbeUrl</c>): admin, but <c>/healthz</c>, <c>/readyz</c> and <c>/metrics</c> only.</summary>
    public static readonly ListenerFeature Probes = new(null, servesProbesOnly: true);

    public ListenerFeature(string? listenerName)
    {
        ListenerName = listenerName;
    }

    private ListenerFeature(string? listenerName, bool servesProbesOnly)
    {
        ListenerName = listenerName;
        ServesProbesOnly = servesProbesOnly;
    }

    /// <summary>Null for the admin and probe endpoints.</summary>
    public string? ListenerName { get; }

    public bool IsAdmin => ListenerName is null;

    /// <summary>True for the probe endpoint, which may face the pod network.</summary>
    public bool ServesProbesOnly { get; }
}
