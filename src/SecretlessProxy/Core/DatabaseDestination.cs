namespace SecretlessProxy.Core;

/// <summary>
/// What policy sees of a database connection: the listener's upstream (never what the app's startup
/// message says), the pseudo-method <c>CONNECT</c> and the database as the path, so a policy's
/// <c>PathPrefix</c> can limit which databases a caller may log in to. The scheme is the listener
/// kind's own (<c>postgres</c>, <c>mysql</c>, <c>redis</c>).
/// </summary>
internal static class DatabaseDestination
{
    public const string Method = "CONNECT";

    public static RequestDestination For(string scheme, string host, int port, string database) =>
        new(scheme, host, port, Method, "/" + database, IsDatabase: true);
}
