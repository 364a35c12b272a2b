using SecretlessProxy.Credentials;
using SecretlessProxy.Injection;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Per-request state handed from the request handler to the transformer and the injection handler:
/// when the request arrived (for the added-latency metric), its listener, and what to inject
/// (absent for pass-through).
/// </summary>
internal sealed class ForwardingFeature
{
    public ForwardingFeature(string listener, long startTimestamp, InjectionRule? rule, Credential? credential)
    {
        Listener = listener;
        StartTimestamp = startTimestamp;
        Rule = rule;
        Credential = credential;
    }

    public string Listener { get; }

    public long StartTimestamp { get; }

    public InjectionRule? Rule { get; }

    public Credential? Credential { get; }
}
