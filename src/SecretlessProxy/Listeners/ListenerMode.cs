namespace SecretlessProxy.Listeners;

public enum ListenerMode
{
    /// <summary>An explicit localhost route: every request goes to the listener's configured upstream.</summary>
    Route,
}
