using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Forward;

/// <summary>A Forward listener's own settings: the ports a CONNECT may name (<c>AllowedConnectPorts</c>).</summary>
internal sealed class ForwardListenerSettings : ListenerSettings
{
    private static readonly ForwardListenerSettings Default = new([443]);

    public ForwardListenerSettings(IReadOnlyList<int> allowedConnectPorts) => AllowedConnectPorts = allowedConnectPorts;

    /// <summary>Default 443.</summary>
    public IReadOnlyList<int> AllowedConnectPorts { get; }

    /// <summary>The settings the Forward kind compiled for <paramref name="listener"/>, or the defaults.</summary>
    public static ForwardListenerSettings Of(ListenerDefinition listener) => listener.Settings as ForwardListenerSettings ?? Default;
}
