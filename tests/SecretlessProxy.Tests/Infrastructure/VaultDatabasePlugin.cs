namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// What <see cref="FakeVault.DatabaseEngine"/> does on a real server for each lease, as Vault's
/// database secrets engine plugins do: create a user with the lease's password when it is issued,
/// drop it when the lease is revoked or expires, and list the users the server knows (its catalog:
/// <c>pg_roles</c>, <c>mysql.user</c>, <c>ACL USERS</c>). The statements follow the plugins'
/// documented defaults (create with login and grants; revoke privileges, then drop).
/// </summary>
public sealed record VaultDatabasePlugin(
    string Name,
    Func<string, string, Task> CreateUser,
    Func<string, Task> DropUser,
    Func<Task<IReadOnlyList<string>>> ListUsers)
{
    /// <summary>postgresql-database-plugin: a login role with SELECT on the test table; revoked with DROP OWNED (its grants) and DROP ROLE.</summary>
    public static VaultDatabasePlugin Postgres(PostgresServer server) => new(
        "postgresql-database-plugin",
        (user, password) => server.ExecAsSuperuserAsync(
            $"SET password_encryption = 'scram-sha-256'; CREATE ROLE {PgIdentifier(user)} WITH LOGIN PASSWORD {PgLiteral(password)}; " +
            $"GRANT SELECT ON {PostgresServer.Table} TO {PgIdentifier(user)};"),
        user => server.ExecAsSuperuserAsync($"DROP OWNED BY {PgIdentifier(user)}; DROP ROLE IF EXISTS {PgIdentifier(user)};"),
        async () => Lines(await server.ExecAsSuperuserAsync("SELECT rolname FROM pg_roles ORDER BY rolname")));

    /// <summary>mysql-database-plugin: a user at any host with SELECT on the test database; revoked with REVOKE ALL and DROP USER.</summary>
    public static VaultDatabasePlugin MariaDb(MariaDbServer server) => new(
        "mysql-database-plugin",
        (user, password) => server.ExecAsRootAsync(
            $"CREATE USER {MyAccount(user)} IDENTIFIED BY {MyLiteral(password)}; GRANT SELECT ON {MariaDbServer.Database}.* TO {MyAccount(user)};"),
        user => server.ExecAsRootAsync($"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {MyAccount(user)}; DROP USER IF EXISTS {MyAccount(user)};"),
        async () => Lines(await server.ExecAsRootAsync("SELECT User FROM mysql.user ORDER BY User")));

    /// <summary>redis-database-plugin: an ACL user with every key and command; revoked with ACL DELUSER.</summary>
    public static VaultDatabasePlugin Redis(RedisServer server) => new(
        "redis-database-plugin",
        (user, password) => server.SetUserAsync(user, password),
        user => server.AdminAsync("ACL", "DELUSER", user),
        async () => Lines(await server.AdminAsync("ACL", "USERS")));

    private static IReadOnlyList<string> Lines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string PgIdentifier(string value) => "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static string PgLiteral(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string MyLiteral(string value) => "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string MyAccount(string user) => MyLiteral(user) + "@'%'";
}
