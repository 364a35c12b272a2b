using System.Diagnostics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>The xunit collection whose test classes share one <see cref="RedisServer"/>: <c>[Collection(RedisServer.Collection)]</c>.</summary>
[CollectionDefinition(RedisServer.Collection)]
public sealed class RedisCollection : ICollectionFixture<RedisServer>
{
}

/// <summary>
/// A real Redis 7 server (Debian's <c>redis-server</c>) in a temp folder, on 127.0.0.1: a plaintext
/// port and a TLS port (certificate from <see cref="TestPki"/>, client certificates not asked for),
/// no persistence, and ACL users: <c>default</c> needs <see cref="AdminPassword"/> (so a command
/// without a login fails with NOAUTH), <see cref="AppUser"/> may do everything, <see cref="ReadUser"/>
/// only reads. Use as a collection fixture (xunit calls <see cref="InitializeAsync"/>). When the
/// binaries are missing, <see cref="Available"/> is false with a reason, except with CI=true, where
/// start throws.
/// </summary>
public sealed class RedisServer : IAsyncLifetime, IAsyncDisposable
{
    public const string Collection = "redis";
    public const string AppUser = "app";
    public const string ReadUser = "reader";
    public const string ServerBinary = "/usr/bin/redis-server";
    public const string CliBinary = "/usr/bin/redis-cli";

    private Process? _process;
    private bool _disposed;

    public bool Available { get; private set; }

    public string? UnavailableReason { get; private set; }

    public string Host => "127.0.0.1";

    /// <summary>The DNS name in the server certificate (it also holds IP 127.0.0.1).</summary>
    public string ServerName => "localhost";

    /// <summary>The plaintext port.</summary>
    public int Port { get; private set; }

    /// <summary>The TLS port (the server's certificate chains to <see cref="CaFile"/>).</summary>
    public int TlsPort { get; private set; }

    public string CaFile { get; private set; } = string.Empty;

    public string Directory { get; private set; } = string.Empty;

    public string LogFile { get; private set; } = string.Empty;

    /// <summary>The password of the <c>default</c> user (every command, used only by the test itself).</summary>
    public string AdminPassword { get; } = NewPassword("admin");

    public string AppPassword { get; } = NewPassword("app");

    public string ReadPassword { get; } = NewPassword("read");

    public TimeSpan StartupTime { get; private set; }

    /// <summary>Why this machine cannot run the test server, or null.</summary>
    public static string? MissingReason() =>
        !OperatingSystem.IsLinux() ? "the Redis test server runs on Linux only"
        : !File.Exists(ServerBinary) || !File.Exists(CliBinary) ? "no " + ServerBinary + " or " + CliBinary + "; tests/run.sh installs Debian's redis-server and redis-tools"
        : null;

    public async Task InitializeAsync()
    {
        var stopwatch = Stopwatch.StartNew();
        if (MissingReason() is { } reason)
        {
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException("CI=true and Redis is unavailable: " + reason);
            }

            UnavailableReason = reason;
            return;
        }

        try
        {
            await StartServerAsync();
        }
        catch
        {
            await DisposeAsync();
            throw;
        }

        Available = true;
        StartupTime = stopwatch.Elapsed;
    }

    private async Task StartServerAsync()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("secretless-redis-").FullName;
        LogFile = Path.Combine(Directory, "redis.log");
        var certFile = Path.Combine(Directory, "server.crt");
        var keyFile = Path.Combine(Directory, "server.key");
        using (var pki = new TestPki(Directory))
        using (var certificate = pki.IssueServer())
        using (var key = certificate.GetECDsaPrivateKey()!)
        {
            CaFile = pki.CaFile;
            await File.WriteAllTextAsync(certFile, certificate.ExportCertificatePem() + "\n");
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
        }

        // A free port pair: bind port 0, release, let redis take it. Another process can take it in
        // between; then the start fails with a bind error and the next attempt picks other ports.
        for (var attempt = 1; ; attempt++)
        {
            Port = WireMockFactory.FreePort();
            TlsPort = WireMockFactory.FreePort();
            var config = Path.Combine(Directory, "redis.conf");
            // Pub/sub channels: Redis 7 denies every channel to a user unless it says allchannels.
            await File.WriteAllTextAsync(config, $"""
                bind 127.0.0.1
                port {Port}
                tls-port {TlsPort}
                tls-cert-file {certFile}
                tls-key-file {keyFile}
                tls-ca-cert-file {CaFile}
                tls-auth-clients no
                dir {Directory}
                logfile {LogFile}
                save ""
                appendonly no
                daemonize no
                protected-mode yes
                databases 16
                user default on >{AdminPassword} ~* &* +@all
                user {AppUser} on >{AppPassword} ~* &* +@all
                user {ReadUser} on >{ReadPassword} ~* &* +@read +@connection -@dangerous

                """);

            var start = new ProcessStartInfo(ServerBinary) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(config);
            _process = Process.Start(start)!;
            _ = _process.StandardOutput.ReadToEndAsync();
            _ = _process.StandardError.ReadToEndAsync();

            var started = DateTime.UtcNow;
            while (!_process.HasExited && !LogTail().Contains("Ready to accept connections", StringComparison.Ordinal) && DateTime.UtcNow - started < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(20);
            }

            if (!_process.HasExited && LogTail().Contains("Ready to accept connections", StringComparison.Ordinal))
            {
                break;
            }

            var log = LogTail();
            await StopProcessAsync();
            if (attempt < 5 && log.Contains("Address already in use", StringComparison.Ordinal))
            {
                continue;
            }

            throw new InvalidOperationException($"redis-server did not start on ports {Port}/{TlsPort}.\nLog tail ({LogFile}):\n{log}");
        }
    }

    /// <summary>Runs one command as the <c>default</c> user (every permission) on the plaintext port; returns redis-cli's output.</summary>
    public async Task<string> AdminAsync(params string[] command)
    {
        var result = await ExternalClient.RunAsync(CliBinary, ["-h", Host, "-p", Port.ToString(), "--user", "default", "--pass", AdminPassword, "--no-auth-warning", .. command]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException("redis-cli failed: " + result);
        }

        return result.Output.TrimEnd('\n');
    }

    /// <summary>Creates (or replaces) an ACL user with every permission and one password.</summary>
    public Task<string> SetUserAsync(string user, string password) =>
        AdminAsync("ACL", "SETUSER", user, "reset", "on", ">" + password, "~*", "&*", "+@all");

    /// <summary>The last lines of the server log, for failure messages.</summary>
    public string LogTail(int lines = 40)
    {
        try
        {
            using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            var all = reader.ReadToEnd().Split('\n');
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException e)
        {
            return "(no log: " + e.Message + ")";
        }
    }

    public async Task DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await StopProcessAsync();
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

    private async Task StopProcessAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        try
        {
            if (!process.HasExited)
            {
                // Nothing persisted: kill rather than a SHUTDOWN that would try to save.
                process.Kill(entireProcessTree: true);
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                await process.WaitForExitAsync(bound.Token);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
        {
        }
        finally
        {
            process.Dispose();
        }
    }


    private static string NewPassword(string kind) => $"redis-{kind}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12))}";
}
