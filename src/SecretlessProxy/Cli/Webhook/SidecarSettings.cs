namespace SecretlessProxy.Cli.Webhook;

/// <summary>What the injected containers run: the proxy's image and how the kubelet pulls it.</summary>
internal sealed record SidecarSettings(string Image, string ImagePullPolicy)
{
    /// <summary>The image's <c>USER</c>: the proxy's uid, the one the iptables rules exclude.</summary>
    public const long ProxyUid = 65532;

    public static SidecarSettings Default { get; } = new("secretless-proxy:latest", "IfNotPresent");
}
