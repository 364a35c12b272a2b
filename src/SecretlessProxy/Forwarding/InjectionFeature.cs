using SecretlessProxy.Credentials;
using SecretlessProxy.Injection;

namespace SecretlessProxy.Forwarding;

/// <summary>What the transformer must inject into this request's outgoing copy; absent for pass-through.</summary>
internal sealed class InjectionFeature
{
    public InjectionFeature(InjectionRule rule, Credential credential)
    {
        Rule = rule;
        Credential = credential;
    }

    public InjectionRule Rule { get; }

    public Credential Credential { get; }
}
