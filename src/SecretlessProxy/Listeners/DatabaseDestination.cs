using SecretlessProxy.Policy;

namespace SecretlessProxy.Listeners;

/// <summary>
/// What policy sees of a database connection: the listener's upstream (never what the app's startup
/// message says), the pseudo-method <c>CONNECT</c> and the database as the path, so a policy's
/// <c>PathPrefix</c> can limit which databases a caller may log in to.
/// </summary>
public static class DatabaseDestination
{
    public const string Method = "CONNECT";

    public const string Scheme = "postgres";

    public static RequestDestination For(DatabaseListenerSettings settings, string database) =>
        new(Scheme, settings.Host, settings.Port, Method, "/" + database);
}
