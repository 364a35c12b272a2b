namespace SecretlessProxy.Core;

/// <summary>
/// How a policy's credential goes on the wire. The policy stage only needs to know what an
/// injection acts on (to keep database-login policies apart from HTTP ones); the injectors
/// themselves live in <c>Injection/</c> and are typed by their target, so no injector is ever
/// handed something it cannot act on.
/// </summary>
internal abstract class InjectionRule
{
    /// <summary>Short name for spans and logs: <c>header</c>, <c>basic</c>, <c>query</c>, <c>database-login</c>.</summary>
    public abstract string Kind { get; }

    /// <summary>What this injection acts on.</summary>
    public abstract InjectionTarget Target { get; }
}
