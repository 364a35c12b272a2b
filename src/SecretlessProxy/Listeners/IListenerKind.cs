using Microsoft.AspNetCore.Server.Kestrel.Core;
using SecretlessProxy.Core;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners;

/// <summary>
/// One kind of listener (a configuration <c>Mode</c>), registered in <see cref="ListenerKindRegistry"/>:
/// it compiles and validates the keys it reads, registers the services it needs and wires its
/// Kestrel connection middleware, as Kestrel's <c>ConnectionHandler</c> does for a raw protocol.
/// Nothing outside the kind's folder switches on its mode.
/// </summary>
internal interface IListenerKind
{
    /// <summary>The <c>Mode</c> value that selects this kind (matched ignoring case), as the schema's enum spells it.</summary>
    string Mode { get; }

    /// <summary>What a policy used on this kind's listeners may inject.</summary>
    IReadOnlyList<InjectionTarget> Injects { get; }

    /// <summary>Whether the kind terminates TLS with leaves from the local CA, so that <c>LocalCa</c> is required.</summary>
    bool InterceptsTls { get; }

    /// <summary>
    /// Whether a client's first bytes are always a cleartext HTTP request, so that a connection over
    /// <c>MaxConnections</c> can be answered with a 503 rather than closed.
    /// </summary>
    bool ClientSpeaksHttpFirst { get; }

    /// <summary>
    /// Validates the listener's keys (every problem into <see cref="ListenerCompilation.Errors"/>
    /// with its key path) and compiles it; null when it cannot be compiled.
    /// </summary>
    ListenerDefinition? Compile(ListenerCompilation listener);

    /// <summary>
    /// The listener keys this kind reads besides <see cref="ListenerKindRegistry.CommonKeys"/>: a
    /// listener of another kind that sets one is told which kinds read it.
    /// </summary>
    IReadOnlyCollection<string> OwnKeys { get; }

    /// <summary>Registers the kind's connection handler and what it needs; shared pieces with <c>TryAdd</c>.</summary>
    void AddServices(IServiceCollection services, TimeProvider time);

    /// <summary>
    /// Adds the kind's connection middleware to a listener's endpoint, after the shared ones
    /// (connection cap, listener and caller features). A kind that serves HTTP calls the next
    /// delegate, which is Kestrel's HTTP pipeline and the shared request handler.
    /// </summary>
    void Configure(ListenOptions listen, ListenerDefinition listener);

    /// <summary>Where the listener's connections go, for the start-up log line.</summary>
    string DescribeDestination(ListenerDefinition listener);
}
