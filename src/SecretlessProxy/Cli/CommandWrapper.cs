using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Hosting;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Cli;

/// <summary>
/// <c>run --config FILE [--user UID[:GID]] -- command [args]</c>: wraps a legacy process without
/// changing it. The proxy starts on a free loopback port; the command starts with HTTP(S)_PROXY
/// pointing at it and a CA bundle (system roots plus the local CA) in every variable common clients
/// read. Signals are passed on, the proxy stops when the command exits, and the command's exit code
/// is returned. Nothing the child receives is a credential: it gets addresses and certificates only.
/// Under root the command runs as another user (<see cref="ChildUser.Nobody"/> unless --user says
/// otherwise), through <see cref="ExecAsCommand"/>, and only once none of the proxy's secret files is
/// readable by that user; a command of the proxy's own uid can read them, and is warned about.
/// </summary>
internal static partial class CommandWrapper
{
    /// <summary>Addresses the child reaches directly: the loopback literals (a local database or sidecar).</summary>
    public const string NoProxy = "127.0.0.1,::1";

    private const string NoDiagnostics = "DOTNET_EnableDiagnostics";

    private const UnixFileMode ReadableByAll = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    private const UnixFileMode TraversableByAll = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    private static readonly string[] CaBundleVariables = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE"];

    private static readonly string[] SystemBundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

    /// <param name="user">--user as given; null for the default (nobody under root, else the proxy's own uid).</param>
    /// <param name="notDumpable">Mark the process not dumpable (when the CLI is the process, not a test host).</param>
    public static async Task<int> RunAsync(string configPath, string[] command, ChildUser? user, bool notDumpable, TextWriter error)
    {
        // Decided before anything starts: a switch that cannot happen must not leave a proxy behind.
        var ownUid = Posix.EffectiveUid;
        var ownGid = Posix.EffectiveGid;
        ChildUser? switchTo;
        if (ownUid == 0)
        {
            var target = user ?? ChildUser.Nobody;
            switchTo = target.Uid == 0 ? null : target;
        }
        else if (user is { } asked && (asked.Uid != ownUid || asked.Gid != ownGid))
        {
            await error.WriteLineAsync("secretless-proxy: --user " + asked + " needs root: this proxy runs as uid " + ownUid + " gid " + ownGid + " and cannot start a command as another user; nothing was started").ConfigureAwait(false);
            return ExitCodes.UserSwitchNotPermitted;
        }
        else
        {
            switchTo = null;
        }

        var work = Directory.CreateTempSubdirectory("secretless-proxy-run-");
        try
        {
            if (switchTo is not null && !OperatingSystem.IsWindows())
            {
                // The command's user reaches the CA bundle by its name; the throwaway CA's directory
                // inside stays the proxy's own (0700, key 0600).
                File.SetUnixFileMode(work.FullName, TraversableByAll);
            }

            var overrides = await WrapperOverridesAsync(configPath, work.FullName).ConfigureAwait(false);
            await using var proxy = await ProxyApp.StartAsync(configPath, new ProxyAppOptions
            {
                ConfigOverrides = overrides.Values,
                // The child owns stdout: `run -- env` or a CLI's output must not mix with the proxy's logs.
                LogToStandardError = true,
                NotDumpable = notDumpable,
            }).ConfigureAwait(false);
            var logger = proxy.LoggerFactory.CreateLogger(typeof(CommandWrapper).FullName!);
            var secrets = proxy.State.Snapshot.SecretFiles;

            if (switchTo is { } commandUser)
            {
                var readable = secrets.Select(s => (File: s, Reason: SecretFileAccess.ReadableBy(s.Path, commandUser.Uid, commandUser.Gid))).Where(r => r.Reason is not null).ToArray();
                if (readable.Length > 0)
                {
                    foreach (var (file, reason) in readable)
                    {
                        Log.Refused(logger, command[0], commandUser.Uid, commandUser.Gid, file.Key, file.Path, reason!);
                        await error.WriteLineAsync("secretless-proxy: refusing to start '" + command[0] + "' as uid " + commandUser.Uid + " gid " + commandUser.Gid + ": it could read the secret file '" + file.Path + "' (" + file.Key + "; " + reason + "); make it readable by the proxy's user only (chmod 600, owned by uid " + ownUid + ")").ConfigureAwait(false);
                    }

                    return ExitCodes.SecretReadableByCommand;
                }
            }
            else
            {
                Log.SharesUid(logger, command[0], ownUid, secrets.Count);
                await error.WriteLineAsync("secretless-proxy: warning: '" + command[0] + "' runs as uid " + ownUid + ", the proxy's own: it can read the proxy's " + secrets.Count + " secret file(s) and is separated from the proxy only in part (see the README, \"What run -- protects\"); "
                    + (ownUid == 0 ? "give --user to start it as another user" : "run the proxy as root to start the command as another user")).ConfigureAwait(false);
            }

            var proxyUrl = proxy.GetListenerUri(overrides.ListenerName).ToString().TrimEnd('/');
            var bundle = Path.Combine(work.FullName, "ca-bundle.pem");
            await File.WriteAllTextAsync(bundle, BuildCaBundle(proxy)).ConfigureAwait(false);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(bundle, ReadableByAll);
            }

            var start = switchTo is { } asUser ? ExecAs(asUser, secrets, command) : Direct(command);
            if (switchTo is not null && Environment.GetEnvironmentVariable(NoDiagnostics) is null)
            {
                // The exec-as step is a .NET process that becomes the command without exiting: its
                // diagnostics socket in TMPDIR would never be removed. It starts without one, and
                // takes the variable out again before the exec (--unset-env).
                start.Environment[NoDiagnostics] = "0";
                start.ArgumentList.Insert(start.ArgumentList.IndexOf("--"), "--unset-env");
                start.ArgumentList.Insert(start.ArgumentList.IndexOf("--"), NoDiagnostics);
            }

            foreach (var name in new[] { "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy" })
            {
                start.Environment[name] = proxyUrl;
            }

            start.Environment["NO_PROXY"] = NoProxy;
            start.Environment["no_proxy"] = NoProxy;
            foreach (var name in CaBundleVariables)
            {
                start.Environment[name] = bundle;
            }

            Process child;
            try
            {
                child = Process.Start(start)!;
            }
            catch (System.ComponentModel.Win32Exception ex)
            {
                await error.WriteLineAsync("secretless-proxy: cannot start '" + command[0] + "': " + ex.Message).ConfigureAwait(false);
                return ExitCodes.CommandNotFound;
            }

            using (child)
            using (Forward(PosixSignal.SIGINT, child))
            using (Forward(PosixSignal.SIGTERM, child))
            {
                Log.Started(logger, command[0], child.Id, switchTo?.Uid ?? ownUid, switchTo?.Gid ?? ownGid);
                await child.WaitForExitAsync().ConfigureAwait(false);
                Log.Exited(logger, command[0], child.ExitCode);
                return child.ExitCode;
            }
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static ProcessStartInfo Direct(string[] command)
    {
        var start = new ProcessStartInfo(command[0]) { UseShellExecute = false };
        foreach (var argument in command.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        return start;
    }

    /// <summary>
    /// The proxy's own executable with <see cref="ExecAsCommand"/>: it becomes the user, checks that
    /// no secret file opens, and replaces itself with the command (the same pid, so signals and the
    /// exit code pass as from a direct child).
    /// </summary>
    private static ProcessStartInfo ExecAs(ChildUser user, IReadOnlyList<SecretFile> secrets, string[] command)
    {
        var (program, prefix) = SelfCommand();
        var start = new ProcessStartInfo(program) { UseShellExecute = false };
        foreach (var argument in prefix.Concat([ExecAsCommand.Name, "--uid", user.Uid.ToString(CultureInfo.InvariantCulture), "--gid", user.Gid.ToString(CultureInfo.InvariantCulture)]))
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var secret in secrets)
        {
            start.ArgumentList.Add("--unreadable");
            start.ArgumentList.Add(secret.Path);
        }

        start.ArgumentList.Add("--");
        foreach (var argument in command)
        {
            start.ArgumentList.Add(argument);
        }

        return start;
    }

    /// <summary>
    /// How to start this program again: the Native AOT binary is <see cref="Environment.ProcessPath"/>
    /// itself; a framework-dependent build (tests, <c>dotnet run</c>) has its assembly beside it and
    /// runs through the apphost or the <c>dotnet</c> host that started this process.
    /// </summary>
    private static (string Program, string[] Prefix) SelfCommand()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("The path of the proxy's executable is unknown, so it cannot start a command as another user.");
        var name = typeof(CommandWrapper).Assembly.GetName().Name!;
        var assembly = Path.Combine(AppContext.BaseDirectory, name + ".dll");
        if (!File.Exists(assembly))
        {
            return (process, Array.Empty<string>());
        }

        if (string.Equals(Path.GetFileNameWithoutExtension(process), "dotnet", StringComparison.Ordinal))
        {
            return (process, new[] { assembly });
        }

        var apphost = Path.Combine(AppContext.BaseDirectory, name);
        return File.Exists(apphost) ? (apphost, Array.Empty<string>()) : ("dotnet", new[] { assembly });
    }

    /// <summary>
    /// Forwards one signal to the child instead of acting on it: the child decides how to stop, and
    /// the proxy stops once it has.
    /// </summary>
    private static PosixSignalRegistration Forward(PosixSignal signal, Process child) =>
        PosixSignalRegistration.Create(signal, context =>
        {
            context.Cancel = true;
            if (!child.HasExited)
            {
                _ = Kill(child.Id, signal == PosixSignal.SIGINT ? 2 : 15);
            }
        });

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private static string BuildCaBundle(ProxyApp proxy)
    {
        var parts = new List<string>();
        var system = Environment.GetEnvironmentVariable("SSL_CERT_FILE") is { } configured && File.Exists(configured)
            ? configured
            : SystemBundles.FirstOrDefault(File.Exists);
        if (system is not null)
        {
            parts.Add(File.ReadAllText(system).TrimEnd());
        }

        var ca = proxy.State.Leaves?.Authority ?? throw new InvalidOperationException("The wrapper's forward listener has no local CA.");
        parts.Add(ca.ExportCertificatePem().TrimEnd());
        return string.Join("\n", parts) + "\n";
    }

    /// <summary>
    /// The configuration the wrapper lays over the file: its Forward listener (or a new one) and the
    /// admin endpoint on free loopback ports, so a wrapped process never clashes with a sidecar, and a
    /// throwaway local CA when the file names none.
    /// </summary>
    private static async Task<(Dictionary<string, string?> Values, string ListenerName)> WrapperOverridesAsync(string configPath, string workDirectory)
    {
        // Read from the raw configuration: the file may be valid only once these overrides apply
        // (a Forward listener without a LocalCa, for example).
        using var tokenClient = HttpClients.CreateTokenClient();
        var loaded = await new ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(configPath, checkFiles: false).ConfigureAwait(false);
        var listeners = loaded.Configuration.GetSection("SecretlessProxy:Listeners").GetChildren().ToArray();
        var forward = listeners.FirstOrDefault(l => string.Equals(l["Mode"], "Forward", StringComparison.OrdinalIgnoreCase));
        var name = forward?.Key ?? "run-wrapper";
        var values = new Dictionary<string, string?>
        {
            ["SecretlessProxy:Admin:Url"] = "http://127.0.0.1:0",
            ["SecretlessProxy:Listeners:" + name + ":Mode"] = "Forward",
        };

        // Every listener moves to a free loopback port: a wrapper must never clash with a sidecar.
        foreach (var listener in listeners.Select(l => l.Key).Append(name).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            values["SecretlessProxy:Listeners:" + listener + ":Url"] = "http://127.0.0.1:0";
        }

        if (!loaded.Configuration.GetSection("SecretlessProxy:LocalCa").Exists())
        {
            values["SecretlessProxy:LocalCa:Directory"] = Path.Combine(workDirectory, "ca");
        }

        return (values, name);
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.WrappedCommandStarted, LogLevel.Information, "Started {Command} (pid {Pid}) as uid {Uid} gid {Gid}, behind the proxy")]
        public static partial void Started(ILogger logger, string command, int pid, uint uid, uint gid);

        [LoggerMessage(EventIds.WrappedCommandExited, LogLevel.Information, "{Command} exited with code {ExitCode}; the proxy stops")]
        public static partial void Exited(ILogger logger, string command, int exitCode);

        [LoggerMessage(EventIds.WrappedCommandSharesUid, LogLevel.Warning, "{Command} runs as uid {Uid}, the proxy's own: it can read the proxy's {SecretFileCount} secret file(s), and only the proxy's non-dumpable flag keeps it from the proxy's memory")]
        public static partial void SharesUid(ILogger logger, string command, uint uid, int secretFileCount);

        [LoggerMessage(EventIds.WrappedCommandRefused, LogLevel.Error, "Not starting {Command} as uid {Uid} gid {Gid}: it could read the secret file {Path} ({Key}; {Reason})")]
        public static partial void Refused(ILogger logger, string command, uint uid, uint gid, string key, string path, string reason);
    }
}
