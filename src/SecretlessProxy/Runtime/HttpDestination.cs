namespace SecretlessProxy.Runtime;

/// <summary>
/// Where the shared HTTP request handler finds a request's destination on a listener that hands
/// its connections to Kestrel's HTTP pipeline. A listener kind chooses one; the handler knows
/// nothing else about the kind.
/// </summary>
internal enum HttpDestination
{
    /// <summary>The listener's configured <see cref="ListenerDefinition.Upstream"/>; an absolute-form target is refused.</summary>
    Upstream,

    /// <summary>
    /// What the request names: an absolute-form <c>http://</c> target, or the tunnel that the
    /// listener's connection middleware opened (<see cref="TunnelFeature"/>).
    /// </summary>
    RequestTarget,

    /// <summary>
    /// What the listener's connection middleware stamped on the connection (<see cref="TunnelFeature"/>,
    /// <see cref="OriginalDestinationFeature"/>); a request on a connection without either is refused.
    /// </summary>
    Connection,
}
