using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>The xunit collection whose test classes share one <see cref="MariaDbServer"/>: <c>[Collection(MariaDbServer.Collection)]</c>.</summary>
[CollectionDefinition(MariaDbServer.Collection)]
public sealed class MariaDbCollection : ICollectionFixture<MariaDbServer>
{
}

/// <summary>
/// A real MariaDB server (Debian's mariadb-server 10.11: mariadb-install-db, mariadbd) in a temp
/// folder: TLS with a <see cref="TestPki"/> certificate, listening on 127.0.0.1 at a free port and on
/// its own unix socket, with databases <see cref="Database"/> (table <see cref="Table"/>) and
/// <see cref="OtherDatabase"/>, and login users per method: <see cref="NativeUser"/> and
/// <see cref="RotatingUser"/> (mysql_native_password) and <see cref="Ed25519User"/> (client_ed25519,
/// the auth_ed25519 plugin). Use as a class or collection fixture (xunit calls
/// <see cref="InitializeAsync"/>) or through <see cref="StartAsync"/>. When the binaries are missing,
/// <see cref="Available"/> is false with a <see cref="UnavailableReason"/>, except with CI=true, where start throws.
/// </summary>
/// <remarks>
/// Setup runs as root over the unix socket (root@localhost has no password and is reachable only
/// through that socket, which lives in the temp folder). Users may log in with or without TLS.
/// </remarks>
public sealed class MariaDbServer : IAsyncLifetime, IAsyncDisposable
{
    public const string Collection = "mariadb";
    public const string NativeUser = "app_native";
    public const string Ed25519User = "app_ed25519";
    public const string RotatingUser = "app_rotating";
    public const string Database = "orders";
    public const string OtherDatabase = "reports";
    public const string Table = "order_items";
    public const int TableRows = 3;

    private const string ServerBinary = "/usr/sbin/mariadbd";
    private const string InstallDbBinary = "/usr/bin/mariadb-install-db";
    private const string ClientBinary = "/usr/bin/mariadb";
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(60);
    private readonly bool _asRoot = Environment.UserName == "root";
    private Process? _server;
    private bool _disposed;

    /// <summary>False when this machine has no MariaDB server binaries (never with CI=true: start throws).</summary>
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

    public string Socket { get; private set; } = string.Empty;

    public string LogFile { get; private set; } = string.Empty;

    /// <summary>The server's version string (e.g. <c>10.11.19-MariaDB-0+deb12u1</c>).</summary>
    public string Version { get; private set; } = string.Empty;

    public string NativePassword { get; } = NewPassword("native");

    public string Ed25519Password { get; } = NewPassword("ed");

    public string RotatingPassword { get; } = NewPassword("rot");

    /// <summary>The mariadb client binary, the unmodified CLI the tests drive.</summary>
    public static string Client => ClientBinary;

    /// <summary>How long the start took (install-db, server start, users and data).</summary>
    public TimeSpan StartupTime { get; private set; }

    public static async Task<MariaDbServer> StartAsync()
    {
        var server = new MariaDbServer();
        await server.InitializeAsync();
        return server;
    }

    /// <summary>A MySqlConnector connection string for <paramref name="user"/> against this server directly (no pooling).</summary>
    public string ConnectionString(string user, string password, bool tls = true) =>
        $"Server={Host};Port={Port};Database={Database};User ID={user};Password={password};Pooling=false;Connection Timeout=15;"
        + (tls ? $"SslMode=VerifyFull;SslCa={CaFile}" : "SslMode=None");

    public async Task InitializeAsync()
    {
        var stopwatch = Stopwatch.StartNew();
        var reason = MissingReason();
        if (reason is not null)
        {
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException("CI=true and MariaDB is unavailable: " + reason);
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
        var root = System.IO.Directory.CreateTempSubdirectory("secretless-mariadb-");
        Directory = root.FullName;
        root.UnixFileMode = Mode755;
        DataDirectory = Path.Combine(Directory, "data");
        Socket = Path.Combine(Directory, "mariadb.sock");
        LogFile = Path.Combine(Directory, "mariadb.log");
        System.IO.Directory.CreateDirectory(DataDirectory);

        // The CA, the server's certificate and key; the key readable by the server's user only.
        var certFile = Path.Combine(Directory, "server.crt");
        var keyFile = Path.Combine(Directory, "server.key");
        using (var pki = new TestPki(Directory))
        using (var certificate = pki.IssueServer())
        using (var key = certificate.GetECDsaPrivateKey()!)
        {
            CaFile = pki.CaFile;
            File.SetUnixFileMode(CaFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            await File.WriteAllTextAsync(certFile, certificate.ExportCertificatePem() + "\n");
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        await SystemUsers.ChownAsync(Directory, "mysql:mysql");

        // --no-defaults everywhere: the machine's /etc/mysql settings (and a running Debian service)
        // stay out of the test server.
        string[] userArgument = _asRoot ? ["--user=mysql"] : [];
        var install = await ExternalClient.RunAsync(InstallDbBinary, ["--no-defaults", "--datadir=" + DataDirectory, .. userArgument, "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"]);
        if (install.ExitCode != 0)
        {
            throw new InvalidOperationException("mariadb-install-db failed: " + install);
        }

        // A free port: bind port 0, release it, let mariadbd take it. Another process can take it in
        // between; then the start fails with a bind error and the next attempt picks another port.
        for (var attempt = 1; ; attempt++)
        {
            Port = WireMockFactory.FreePort();
            var (started, log) = await TryStartAsync(certFile, keyFile, userArgument);
            if (started)
            {
                break;
            }

            if (attempt < 5 && (log.Contains("Address already in use", StringComparison.Ordinal) || log.Contains("Can't start server: Bind", StringComparison.Ordinal)))
            {
                continue;
            }

            throw new InvalidOperationException($"MariaDB did not start on port {Port}.\nLog tail ({LogFile}):\n{log}");
        }

        Version = await ExecAsRootAsync("SELECT VERSION()");
        await ExecAsRootAsync($"""
            INSTALL SONAME 'auth_ed25519';
            CREATE DATABASE {Database};
            CREATE DATABASE {OtherDatabase};
            CREATE TABLE {Database}.{Table} (id INT PRIMARY KEY, sku VARCHAR(64) NOT NULL, quantity INT NOT NULL);
            INSERT INTO {Database}.{Table} VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7);
            CREATE USER '{NativeUser}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('{NativePassword}');
            CREATE USER '{RotatingUser}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('{RotatingPassword}');
            CREATE USER '{Ed25519User}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{Ed25519Password}');
            GRANT ALL ON {Database}.* TO '{NativeUser}'@'%', '{RotatingUser}'@'%', '{Ed25519User}'@'%';
            GRANT ALL ON {OtherDatabase}.* TO '{NativeUser}'@'%', '{RotatingUser}'@'%', '{Ed25519User}'@'%';
            FLUSH PRIVILEGES;
            """);
    }

    private async Task<(bool Started, string Log)> TryStartAsync(string certFile, string keyFile, string[] userArgument)
    {
        if (File.Exists(LogFile))
        {
            File.Delete(LogFile);
        }

        var start = new ProcessStartInfo(ServerBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] arguments =
        [
            "--no-defaults",
            "--datadir=" + DataDirectory,
            .. userArgument,
            "--bind-address=127.0.0.1",
            "--port=" + Port,
            "--socket=" + Socket,
            "--pid-file=" + Path.Combine(Directory, "mariadb.pid"),
            "--log-error=" + LogFile,
            "--ssl-cert=" + certFile,
            "--ssl-key=" + keyFile,
            "--ssl-ca=" + CaFile,
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            "--max-connections=200",
            "--max-allowed-packet=64M",
        ];
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        _server = Process.Start(start)!;
        // Drained so a chatty server never blocks on a full pipe.
        _ = _server.StandardOutput.ReadToEndAsync();
        _ = _server.StandardError.ReadToEndAsync();

        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < StartBound)
        {
            if (_server.HasExited)
            {
                _server.Dispose();
                _server = null;
                return (false, LogTail());
            }

            if (File.Exists(Socket) && CanConnect())
            {
                return (true, string.Empty);
            }

            await Task.Delay(50);
        }

        return (false, "(not ready within " + StartBound.TotalSeconds + " s)\n" + LogTail());
    }

    private bool CanConnect()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Runs SQL as root over the unix socket; returns the client's tab-separated output without column names.</summary>
    public async Task<string> ExecAsRootAsync(string sql)
    {
        var result = await ExternalClient.RunAsync(ClientBinary, ["--no-defaults", "--socket=" + Socket, "-uroot", "--batch", "--skip-column-names", "-e", sql]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"mariadb failed: {result}");
        }

        return result.Output.TrimEnd('\n');
    }

    /// <summary>Changes a user's password, keeping its authentication plugin.</summary>
    public Task SetPasswordAsync(string user, string password)
    {
        var plugin = user == Ed25519User ? "ed25519" : "mysql_native_password";
        return ExecAsRootAsync($"ALTER USER '{user}'@'%' IDENTIFIED VIA {plugin} USING PASSWORD({Literal(password)})");
    }

    public async Task DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_server is { } server)
        {
            try
            {
                if (!server.HasExited)
                {
                    // The data is thrown away: no clean shutdown needed.
                    server.Kill();
                    await server.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));
                }
            }
            catch (Exception)
            {
                // Deleting the folder below still runs.
            }

            server.Dispose();
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

    /// <summary>
    /// Why this machine cannot run the test server (no Linux, no binaries, no mysql user for root),
    /// or null. <see cref="MariaDbFactAttribute"/> skips on it, except with CI=true, where the server
    /// must be there and start throws instead.
    /// </summary>
    public static string? MissingReason() =>
        !OperatingSystem.IsLinux() ? "the MariaDB test server runs on Linux only"
        : new[] { ServerBinary, InstallDbBinary, ClientBinary }.FirstOrDefault(f => !File.Exists(f)) is { } missing ? "no " + missing + "; tests/run.sh installs Debian's mariadb-server and mariadb-client"
        : !File.Exists("/usr/lib/mysql/plugin/auth_ed25519.so") ? "no auth_ed25519 plugin under /usr/lib/mysql/plugin (Debian's mariadb-server ships it)"
        : Environment.UserName == "root" && !SystemUsers.Exists("mysql") ? "running as root but there is no 'mysql' user to run the server as"
        : null;



    private static string NewPassword(string kind) => $"my-{kind}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12))}";

    private static string Literal(string value) => "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'";

    private const UnixFileMode Mode755 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
}
