using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using SecretlessProxy.Hosting;
using SecretlessProxy.Listeners;

namespace SecretlessProxy.Cli;

/// <summary>
/// <c>run --config FILE -- command [args]</c>: wraps a legacy process without changing it. The proxy
/// starts on a free loopback port; the command starts with HTTP(S)_PROXY pointing at it and a CA
/// bundle (system roots plus the local CA) in every variable common clients read. Signals are passed
/// on, the proxy stops when the command exits, and the command's exit code is returned. Nothing the
/// child receives is a credential: it gets addresses and certificates only.
/// </summary>
internal static partial class CommandWrapper
{
    /// <summary>Addresses the child reaches directly: the loopback literals (a local database or sidecar).</summary>
    public const string NoProxy = "127.0.0.1,::1";

    private static readonly string[] CaBundleVariables = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE"];

    private static readonly string[] SystemBundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

    public static async Task<int> RunAsync(string configPath, string[] command, TextWriter error)
    {
        var work = Directory.CreateTempSubdirectory("secretless-proxy-run-");
        try
        {
            var overrides = await WrapperOverridesAsync(configPath, work.FullName).ConfigureAwait(false);
            await using var proxy = await ProxyApp.StartAsync(configPath, new ProxyAppOptions
            {
                ConfigOverrides = overrides.Values,
                // The child owns stdout: `run -- env` or a CLI's output must not mix with the proxy's logs.
                LogToStandardError = true,
            }).ConfigureAwait(false);

            var proxyUrl = proxy.GetListenerUri(overrides.ListenerName).ToString().TrimEnd('/');
            var bundle = Path.Combine(work.FullName, "ca-bundle.pem");
            await File.WriteAllTextAsync(bundle, BuildCaBundle(proxy)).ConfigureAwait(false);

            var start = new ProcessStartInfo(command[0]) { UseShellExecute = false };
            foreach (var argument in command.Skip(1))
            {
                start.ArgumentList.Add(argument);
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
                return 127;
            }

            using (child)
            using (Forward(PosixSignal.SIGINT, child))
            using (Forward(PosixSignal.SIGTERM, child))
            {
                await child.WaitForExitAsync().ConfigureAwait(false);
                return child.ExitCode;
            }
        }
        finally
        {
            work.Delete(recursive: true);
        }
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
        var loaded = await new Configuration.ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(configPath, checkFiles: false).ConfigureAwait(false);
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
}
