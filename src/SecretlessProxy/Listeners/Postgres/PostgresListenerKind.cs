using Microsoft.AspNetCore.Server.Kestrel.Core;
using SecretlessProxy.Core;
using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// <c>Mode: Postgres</c>: PostgreSQL connections, never handed to HTTP. <see cref="PostgresConnectionHandler"/>
/// speaks the v3 protocol toward the app and logs in at the listener's <c>Upstream</c> with its
/// <c>Credential</c>; the compiled <see cref="DatabaseListenerSettings"/> hold the server, its TLS and the login.
/// </summary>
internal sealed class PostgresListenerKind : IListenerKind
{
    private const int DefaultPostgresPort = 5432;

    public string Mode => "Postgres";

    public IReadOnlyList<InjectionTarget> Injects => DatabaseListenerCompiler.DatabaseInjects;

    // AcceptTls needs the local CA, but only when asked for: checked with the listener.
    public bool InterceptsTls => false;

    public bool ClientSpeaksHttpFirst => false;

    public IReadOnlyCollection<string> OwnKeys => DatabaseListenerCompiler.Keys;

    public ListenerDefinition? Compile(ListenerCompilation listener) =>
        DatabaseListenerCompiler.Compile(listener, Mode, DefaultPostgresPort, acceptsTls: true);

    public void AddServices(IServiceCollection services, TimeProvider time)
    {
        services.AddSingleton<PostgresCancelRegistry>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<PostgresConnectionHandler>(sp, time));
    }

    public void Configure(ListenOptions listen, ListenerDefinition listener) =>
        // A raw TCP protocol: the handler owns the connection and never hands it to HTTP.
        listen.Use(_ =>
        {
            var handler = listen.ApplicationServices.GetRequiredService<PostgresConnectionHandler>();
            return connection => handler.OnConnectionAsync(connection, listener.Name);
        });

    public string DescribeDestination(ListenerDefinition listener) =>
        listener.Settings is DatabaseListenerSettings db ? db.Host + ":" + db.Port : "the database server";
}
