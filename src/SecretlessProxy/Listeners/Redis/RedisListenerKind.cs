using Microsoft.AspNetCore.Server.Kestrel.Core;
using SecretlessProxy.Core;
using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Redis;

/// <summary>
/// <c>Mode: Redis</c>: Redis connections, never handed to HTTP. <see cref="RedisConnectionHandler"/>
/// logs in at the listener's <c>Upstream</c> with its <c>Credential</c> (an ACL user name and
/// password) and keeps the app on that user. The app's side is plaintext on loopback: Redis has no
/// in-protocol TLS upgrade to answer, so <c>AcceptTls</c> does not apply.
/// </summary>
internal sealed class RedisListenerKind : IListenerKind
{
    private const int DefaultRedisPort = 6379;

    public string Mode => "Redis";

    public IReadOnlyList<InjectionTarget> Injects => DatabaseListenerCompiler.DatabaseInjects;

    public bool InterceptsTls => false;

    public bool ClientSpeaksHttpFirst => false;

    // AcceptTls is not one: the compiler refuses it on a Redis listener in its own words, and another
    // kind's listener that sets it is told which kinds do take it.
    public IReadOnlyCollection<string> OwnKeys { get; } = [.. DatabaseListenerCompiler.Keys.Where(k => k != "AcceptTls")];

    public ListenerDefinition? Compile(ListenerCompilation listener) =>
        DatabaseListenerCompiler.Compile(listener, Mode, DefaultRedisPort, acceptsTls: false);

    public void AddServices(IServiceCollection services, TimeProvider time) =>
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<RedisConnectionHandler>(sp, time));

    public void Configure(ListenOptions listen, ListenerDefinition listener) =>
        // A raw TCP protocol: the handler owns the connection and never hands it to HTTP.
        listen.Use(_ =>
        {
            var handler = listen.ApplicationServices.GetRequiredService<RedisConnectionHandler>();
            return connection => handler.OnConnectionAsync(connection, listener.Name);
        });

    public string DescribeDestination(ListenerDefinition listener) =>
        listener.Settings is DatabaseListenerSettings db ? db.Host + ":" + db.Port : "the Redis server";
}
