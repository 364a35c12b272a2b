using SecretlessProxy.Runtime;

namespace SecretlessProxy.Configuration;

/// <summary>Process-wide bounds on what the apps can make the proxy hold (<c>SecretlessProxy:Limits</c>).</summary>
internal sealed class LimitsOptions
{
    /// <summary>64 MiB: a few large signed bodies at once, far below a sidecar's usual memory limit.</summary>
    public const long DefaultSigningBufferBytes = ProxySnapshot.DefaultSigningBufferBytes;

    /// <summary>
    /// Bytes of request bodies held at once, across every request, to be hashed for AWS SigV4
    /// payload signing. Beyond it a request is refused (503, or 413 when the body alone is larger).
    /// </summary>
    public long? SigningBufferBytes { get; set; }
}
