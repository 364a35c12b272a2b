using SecretlessProxy.Core;

namespace SecretlessProxy.Injection;

/// <summary>
/// The credential goes into a database's login handshake (see <c>Listeners/Postgres</c>), not into
/// an HTTP request. A policy with this injection authorizes database connections only: an HTTP
/// request it matches is refused before anything is sent (its target is not <see cref="InjectionTarget.HttpRequest"/>).
/// </summary>
internal sealed class DatabaseLoginInjector : InjectionRule
{
    public static readonly DatabaseLoginInjector Instance = new();

    private DatabaseLoginInjector()
    {
    }

    public override string Kind => "database-login";

    public override InjectionTarget Target => InjectionTarget.DatabaseLogin;
}
