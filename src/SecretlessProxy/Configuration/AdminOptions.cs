namespace SecretlessProxy.Configuration;

/// <summary>
/// The admin endpoints, split by who may reach them: <see cref="Url"/> (loopback or a Unix socket)
/// serves everything, state-changing calls only with <see cref="TokenFile"/>'s token or from one
/// of <see cref="AllowedUids"/>; <see cref="ProbeUrl"/> (any address) serves the kubelet's probes
/// and <c>/metrics</c> and nothing else.
/// </summary>
internal sealed class AdminOptions
{
    public const string DefaultUrl = "http://127.0.0.1:9901";

    /// <summary>
    /// Where the admin endpoint is served: <c>http://127.0.0.1:PORT</c>, <c>http://[::1]:PORT</c> or
    /// <c>unix:/path</c>; never another address, since it shows recent decisions (hosts, paths,
    /// callers) and credential state. Never the same port as a listener.
    /// </summary>
    public string? Url { get; set; }

    /// <summary>
    /// Optional: where only <c>/healthz</c>, <c>/readyz</c> and <c>/metrics</c> are served, e.g.
    /// <c>http://0.0.0.0:9902</c> so that the kubelet can probe the pod IP.
    /// </summary>
    public string? ProbeUrl { get; set; }

    /// <summary>
    /// A file holding the admin token; <c>POST /reload</c> and <c>POST /credentials/{name}/revoke</c>
    /// need <c>Authorization: Bearer &lt;token&gt;</c>. Read at each call, so rewriting it rotates the token.
    /// </summary>
    public string? TokenFile { get; set; }

    /// <summary>
    /// With a <c>unix:</c> <see cref="Url"/>: peer uids (SO_PEERCRED) whose state-changing calls are
    /// accepted without a token.
    /// </summary>
    public int[]? AllowedUids { get; set; }
}
