using System.Diagnostics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>The xunit collection whose test classes share one <see cref="PostgresServer"/>: <c>[Collection(PostgresServer.Collection)]</c>.</summary>
[CollectionDefinition(PostgresServer.Collection)]
public sealed class PostgresCollection : ICollectionFixture<PostgresServer>
{
}

/// <summary>
/// A real PostgreSQL server (Debian's, under /usr/lib/postgresql/*/bin) in a temp folder: TLS with a
/// <see cref="TestPki"/> certificate, listening on 127.0.0.1 at a free port, with a database
/// <c>orders</c> (table <see cref="Table"/>) and three login roles, one per password method:
/// <see cref="ScramUser"/> (SCRAM-SHA-256), <see cref="Md5User"/> (stored and checked as MD5) and
/// <see cref="CleartextUser"/> (<c>password</c> auth, i.e. cleartext inside the connection).
/// Use as a class or collection fixture (xunit calls <see cref="InitializeAsync"/>) or through
/// <see cref="StartAsync"/>. When the binaries are missing, <see cref="Available"/> is false with a
/// <see cref="UnavailableReason"/>, except with CI=true, where start throws.
/// </summary>
/// <remarks>
/// pg_hba.conf (first match wins): unix socket trust (setup only); TLS: md5user md5, cleartextuser password, everyone else
/// scram-sha-256; without TLS: cleartextuser password, md5user md5, everyone else scram-sha-256.
/// </remarks>
public sealed class PostgresServer : IAsyncLifetime, IAsyncDisposable
{
    public const string Collection = "postgres";
    public const string Superuser = "postgres";
    public const string ScramUser = "app_scram";
    public const string Md5User = "md5user";
    public const string CleartextUser = "cleartextuser";
    public const string Database = "orders";
    public const string Table = "order_items";
    public const int TableRows = 3;

    private static readonly TimeSpan CommandBound = TimeSpan.FromSeconds(60);
    private readonly bool _asRoot = Environment.UserName == "root";
    private bool _started;
    private bool _disposed;

    /// <summary>False when this machine has no PostgreSQL server binaries (never with CI=true: start throws).</summary>
    public bool Available { get; private set; }

    public string? UnavailableReason { get; private set; }

    public string Host => "127.0.0.1";

    /// <summary>The DNS name in the server certificate (it also holds IP 127.0.0.1).</summary>
    public string ServerName => "localhost";

    public int Port { get; private set; }

    /// <summary>PEM of the CA that signed the server certificate.</summary>
    public string CaFile { get; private set; } = string.Empty;

    /// <summary>The folder holding everything below; deleted on dispose.</summary>
    public string Directory { get; private set; } = string.Empty;

    public string DataDirectory { get; private set; } = string.Empty;

    public string SocketDirectory { get; private set; } = string.Empty;

    /// <summary>The server binaries (initdb, pg_ctl, postgres, psql, pgbench).</summary>
    public string BinDirectory { get; private set; } = string.Empty;

    public string LogFile { get; private set; } = string.Empty;

    public string SuperuserPassword { get; } = NewPassword("super");

    public string ScramPassword { get; } = NewPassword("scram");

    public string Md5Password { get; } = NewPassword("md5");

    public string CleartextPassword { get; } = NewPassword("clear");

    /// <summary>How long the start took (initdb, server start, roles and data).</summary>
    public TimeSpan StartupTime { get; private set; }

    public static async Task<PostgresServer> StartAsync()
    {
        var server = new PostgresServer();
        await server.InitializeAsync();
        return server;
    }

    /// <summary>An Npgsql connection string for <paramref name="user"/> against this server (no pooling).</summary>
    public string ConnectionString(string user, string password, bool tls = true) =>
        $"Host={Host};Port={Port};Database={Database};Username={user};Password={password};Pooling=false;Timeout=15;"
        + (tls ? $"SSL Mode=VerifyFull;Root Certificate={CaFile}" : "SSL Mode=Disable");

    public async Task InitializeAsync()
    {
        var stopwatch = Stopwatch.StartNew();
        BinDirectory = OperatingSystem.IsLinux() ? FindBinDirectory() ?? string.Empty : string.Empty;
        var reason = MissingReason();
        if (reason is not null)
        {
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException("CI=true and PostgreSQL is unavailable: " + reason);
            }

            UnavailableReason = reason;
            return;
        }

        try
        {
            if (OperatingSystem.IsLinux())
            {
                await StartServerAsync();
            }
        }
        catch
        {
            await DisposeAsync();
            throw;
        }

        Available = true;
        StartupTime = stopwatch.Elapsed;
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private async Task StartServerAsync()
    {
        var root = System.IO.Directory.CreateTempSubdirectory("secretless-pg-");
        Directory = root.FullName;
        root.UnixFileMode = Mode755;
        DataDirectory = Path.Combine(Directory, "data");
        SocketDirectory = Path.Combine(Directory, "sock");
        LogFile = Path.Combine(Directory, "postgres.log");
        System.IO.Directory.CreateDirectory(SocketDirectory);
        System.IO.Directory.CreateDirectory(DataDirectory).UnixFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        var pwFile = Path.Combine(Directory, "superuser.pw");
        await File.WriteAllTextAsync(pwFile, SuperuserPassword + "\n");
        File.SetUnixFileMode(pwFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await SystemUsers.ChownAsync(Directory, "postgres:postgres");

        await RunServerToolAsync("initdb", ["-D", DataDirectory, "-U", Superuser, "--pwfile=" + pwFile, "-A", "scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
        File.Delete(pwFile);

        // The CA and the server's certificate and key. Written by this process, then owned by postgres.
        using (var pki = new TestPki(Directory))
        using (var certificate = pki.IssueServer())
        using (var key = certificate.GetECDsaPrivateKey()!)
        {
            CaFile = pki.CaFile;
            File.SetUnixFileMode(CaFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            await File.WriteAllTextAsync(Path.Combine(DataDirectory, "server.crt"), certificate.ExportCertificatePem() + "\n");
            var keyFile = Path.Combine(DataDirectory, "server.key");
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        await File.AppendAllTextAsync(Path.Combine(DataDirectory, "postgresql.conf"), $"""

            # secretless-proxy test server
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '{SocketDirectory}'
            ssl = on
            ssl_cert_file = 'server.crt'
            ssl_key_file = 'server.key'
            password_encryption = 'scram-sha-256'
            max_connections = 100
            shared_buffers = 16MB
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            log_min_messages = warning
            log_connections = off
            include 'port.conf'

            """);
        await File.WriteAllTextAsync(Path.Combine(DataDirectory, "pg_hba.conf"), $"""
            # TYPE    DATABASE USER            ADDRESS       METHOD
            local     all      all                           trust
            hostssl   all      {Md5User}         127.0.0.1/32  md5
            hostssl   all      {CleartextUser}   127.0.0.1/32  password
            hostssl   all      all             127.0.0.1/32  scram-sha-256
            hostnossl all      {CleartextUser}   127.0.0.1/32  password
            hostnossl all      {Md5User}         127.0.0.1/32  md5
            hostnossl all      all             127.0.0.1/32  scram-sha-256

            """);

        // A free port: bind port 0, release it, let postgres take it. Another process can take it in
        // between; then the start fails with a bind error and the next attempt picks another port.
        for (var attempt = 1; ; attempt++)
        {
            Port = WireMockFactory.FreePort();
            await File.WriteAllTextAsync(Path.Combine(DataDirectory, "port.conf"), $"port = {Port}\n");
            await SystemUsers.ChownAsync(Directory, "postgres:postgres");
            _started = true;
            var result = await RunServerToolAsync("pg_ctl", ["-D", DataDirectory, "-l", LogFile, "-w", "-t", "30", "start"], throwOnFailure: false);
            if (result.ExitCode == 0)
            {
                break;
            }

            var log = LogTail();
            if (attempt < 5 && (log.Contains("could not bind", StringComparison.Ordinal) || log.Contains("Address already in use", StringComparison.Ordinal)))
            {
                continue;
            }

            throw new InvalidOperationException($"PostgreSQL did not start on port {Port} (pg_ctl {result}).\nLog tail ({LogFile}):\n{log}");
        }

        await PsqlAsync("postgres", $"CREATE DATABASE {Database}");
        await PsqlAsync(Database, $"""
            CREATE TABLE {Table} (id int PRIMARY KEY, sku text NOT NULL, quantity int NOT NULL);
            INSERT INTO {Table} VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7);
            SET password_encryption = 'scram-sha-256';
            CREATE ROLE {ScramUser} LOGIN PASSWORD '{ScramPassword}';
            CREATE ROLE {CleartextUser} LOGIN PASSWORD '{CleartextPassword}';
            SET password_encryption = 'md5';
            CREATE ROLE {Md5User} LOGIN PASSWORD '{Md5Password}';
            GRANT CONNECT, TEMPORARY ON DATABASE {Database} TO {ScramUser}, {Md5User}, {CleartextUser};
            GRANT USAGE, CREATE ON SCHEMA public TO {ScramUser}, {Md5User}, {CleartextUser};
            GRANT SELECT, INSERT, UPDATE, DELETE ON {Table} TO {ScramUser}, {Md5User}, {CleartextUser};
            """);
    }

    /// <summary>Runs SQL as the superuser over the unix socket (trust) in <c>orders</c>; returns psql's unaligned, tuples-only output.</summary>
    public Task<string> ExecAsSuperuserAsync(string sql) => PsqlAsync(Database, sql);

    /// <summary>Changes a role's password, keeping the way it is stored (an MD5 role stays MD5, others get SCRAM).</summary>
    public async Task SetPasswordAsync(string role, string password)
    {
        var stored = await ExecAsSuperuserAsync($"SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = {Literal(role)}");
        if (stored.Length == 0)
        {
            throw new ArgumentException($"no role '{role}' with a password", nameof(role));
        }

        var encryption = stored == "md5" ? "md5" : "scram-sha-256";
        await ExecAsSuperuserAsync($"SET password_encryption = '{encryption}'; ALTER ROLE {Identifier(role)} PASSWORD {Literal(password)}");
    }

    private async Task<string> PsqlAsync(string database, string sql)
    {
        var result = await ExternalClient.RunAsync(Path.Combine(BinDirectory, "psql"), ["-X", "-v", "ON_ERROR_STOP=1", "-h", SocketDirectory, "-p", Port.ToString(), "-U", Superuser, "-d", database, "-Atc", sql]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"psql failed: {result}");
        }

        return result.Output.TrimEnd('\n');
    }

    public async Task DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_started)
        {
            try
            {
                await RunServerToolAsync("pg_ctl", ["-D", DataDirectory, "-m", "immediate", "-w", "-t", "20", "stop"], throwOnFailure: false);
            }
            catch (Exception)
            {
                // Deleting the folder below still runs; a leftover postmaster dies with the data dir gone.
            }
        }

        if (Directory.Length > 0 && System.IO.Directory.Exists(Directory))
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    ValueTask IAsyncDisposable.DisposeAsync() => new(DisposeAsync());

    /// <summary>The last lines of the server log, for failure messages.</summary>
    public string LogTail(int lines = 40)
    {
        try
        {
            return string.Join('\n', File.ReadLines(LogFile).TakeLast(lines));
        }
        catch (IOException e)
        {
            return "(no log: " + e.Message + ")";
        }
    }

    private async Task<ExternalClient.Result> RunServerToolAsync(string tool, string[] arguments, bool throwOnFailure = true)
    {
        // initdb and postgres refuse to run as root: as root, run them as the postgres user.
        var program = Path.Combine(BinDirectory, tool);
        var result = _asRoot
            ? await ExternalClient.RunAsync("runuser", ["-u", "postgres", "--", program, .. arguments])
            : await ExternalClient.RunAsync(program, arguments);
        if (throwOnFailure && result.ExitCode != 0)
        {
            throw new InvalidOperationException($"{tool} failed: {result}");
        }

        return result;
    }

    /// <summary>
    /// Why this machine cannot run the test server (no Linux, no binaries, no postgres user for
    /// root), or null. <see cref="PostgresFactAttribute"/> skips on it, except with CI=true, where
    /// the server must be there and start throws instead.
    /// </summary>
    public static string? MissingReason() =>
        !OperatingSystem.IsLinux() ? "the PostgreSQL test server runs on Linux only"
        : FindBinDirectory() is null ? "no PostgreSQL server binaries (initdb, pg_ctl, postgres) under /usr/lib/postgresql/*/bin; tests/run.sh installs Debian's postgresql"
        : Environment.UserName == "root" && !SystemUsers.Exists("postgres") ? "running as root but there is no 'postgres' user to run the server as"
        : null;

    private static string? FindBinDirectory()
    {
        if (!System.IO.Directory.Exists("/usr/lib/postgresql"))
        {
            return null;
        }

        return System.IO.Directory.GetDirectories("/usr/lib/postgresql")
            .Select(d => Path.Combine(d, "bin"))
            .Where(b => new[] { "initdb", "pg_ctl", "postgres", "psql" }.All(t => File.Exists(Path.Combine(b, t))))
            .OrderByDescending(b => int.TryParse(Path.GetFileName(Path.GetDirectoryName(b)), out var v) ? v : 0)
            .FirstOrDefault();
    }



    private static string NewPassword(string kind) => $"pg-{kind}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12))}";

    private static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string Identifier(string value) => "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private const UnixFileMode Mode755 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
}
