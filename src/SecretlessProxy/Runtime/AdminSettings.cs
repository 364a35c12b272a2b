using System.Net;

namespace SecretlessProxy.Runtime;

/// <summary>The compiled <c>Admin</c> section.</summary>
/// <param name="EndPoint">The admin endpoint: a loopback address or a Unix socket.</param>
/// <param name="ProbeEndPoint">The probes-and-metrics endpoint, when configured.</param>
/// <param name="TokenFile">The admin token's file (absolute), or null when no token is configured.</param>
/// <param name="AllowedUids">Peer uids accepted on a Unix-socket admin endpoint without a token.</param>
internal sealed record AdminSettings(EndPoint EndPoint, IPEndPoint? ProbeEndPoint, string? TokenFile, IReadOnlyList<int> AllowedUids)
{
    /// <summary>Whether any state-changing call can be authorised at all.</summary>
    public bool StateChangesEnabled => TokenFile is not null || AllowedUids.Count > 0;
}
