namespace SecretlessProxy.Listeners;

/// <summary>
/// Set on every connection by the listener that accepted it, so the HTTP pipeline knows which
/// listener (or the admin port) a request came through without trusting anything the client sent.
/// </summary>
public sealed class ListenerFeature
{
    public static readonly ListenerFeature Admin = new(null);

    public ListenerFeature(string? listenerName)
    {
        ListenerName = listenerName;
    }

    /// <summary>Null for the admin port.</summary>
    public string? ListenerName { get; }

    public bool IsAdmin => ListenerName is null;
}
