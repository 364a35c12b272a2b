using SecretlessProxy.Core;
using SecretlessProxy.Injection;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Per-request state handed from the request handler to the transformer and the injection handler:
/// when the request arrived (for the added-latency metric), its listener, the request as it goes on
/// the wire (decided on before policy ran), and what to inject (absent for pass-through).
/// </summary>
internal sealed class ForwardingFeature
{
    public ForwardingFeature(string listener, long startTimestamp, HttpRequestInjector? rule, Credential? credential, OutboundRequest outbound, IReadOnlyList<string>? passRoutingHeaders, SigningBufferScope? signingBuffers = null)
    {
        SigningBuffers = signingBuffers;
        Listener = listener;
        StartTimestamp = startTimestamp;
        Rule = rule;
        Credential = credential;
        Outbound = outbound;
        PassRoutingHeaders = passRoutingHeaders;
    }

    public string Listener { get; }

    public long StartTimestamp { get; }

    public HttpRequestInjector? Rule { get; }

    public Credential? Credential { get; }

    /// <summary>The URL and Host the policy matched; the transformer sends exactly these.</summary>
    public OutboundRequest Outbound { get; }

    /// <summary>
    /// Null when the request carries no credential (pass-through: the app's headers go on as sent);
    /// otherwise the routing-override headers the policy lets through, every other one removed.
    /// </summary>
    public IReadOnlyList<string>? PassRoutingHeaders { get; }

    /// <summary>
    /// What the request holds of the signing-buffer budget (set for SigV4 policies), released by
    /// the request handler when the request ends.
    /// </summary>
    public SigningBufferScope? SigningBuffers { get; }
}
