using System.Security.Cryptography;
using SecretlessProxy.Configuration;
using SecretlessProxy.Identity;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Hosting;

/// <summary>
/// Live reload: watches the config file (a Kubernetes ConfigMap updates by swapping a <c>..data</c>
/// symlink, which shows up as a change in the folder, not in the file), validates the new version
/// exactly as start-up does, and swaps it in atomically. An invalid version is rejected with every
/// reason in the log and at <c>/readyz</c>, and the last good version keeps serving (Secretless
/// Broker exits here, taking the app's traffic with it). <c>POST /reload</c> forces one.
/// </summary>
internal sealed partial class ConfigReloader : IAsyncDisposable
{
    // File events come in bursts (write, chmod, rename); one reload per burst.
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(100);

    // Watchers miss events on some volume types (network file systems); the poll is the safety net.
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(5);

    private readonly string _configPath;
    private readonly ProxyAppOptions _options;
    private readonly HttpMessageInvoker _tokenClient;
    private readonly WorkloadIdentityAccessor _identityAccessor;
    private readonly ILoggerFactory _sourceLoggers;
    private readonly ProxyState _state;
    private readonly Func<IWorkloadIdentitySettings, IWorkloadIdentitySource> _identityFactory;
    private readonly ILogger _logger;
    private readonly ProxyMetrics _metrics;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<FileSystemWatcher> _watchers = [];
    private ITimer? _poll;
    private int _pendingChange;
    private byte[]? _loadedHash;
    private int _disposed;

    public ConfigReloader(string configPath, ProxyAppOptions options, HttpMessageInvoker tokenClient, WorkloadIdentityAccessor identityAccessor, ILoggerFactory sourceLoggers, ProxyState state, Func<IWorkloadIdentitySettings, IWorkloadIdentitySource> identityFactory, ProxyMetrics metrics, ILogger<ConfigReloader> logger)
    {
        _metrics = metrics;
        _configPath = Path.GetFullPath(configPath);
        _options = options;
        _tokenClient = tokenClient;
        _identityAccessor = identityAccessor;
        _sourceLoggers = sourceLoggers;
        _state = state;
        _identityFactory = identityFactory;
        _logger = logger;
        _loadedHash = HashFile(_configPath);
    }

    /// <summary>Starts watching the folders the config path resolves through, and polling the file.</summary>
    public void Start()
    {
        foreach (var directory in WatchedDirectories(_configPath))
        {
            try
            {
                var watcher = new FileSystemWatcher(directory) { IncludeSubdirectories = false, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime };
                watcher.Changed += OnFileEvent;
                watcher.Created += OnFileEvent;
                watcher.Renamed += OnFileEvent;
                watcher.Deleted += OnFileEvent;
                watcher.EnableRaisingEvents = true;
                _watchers.Add(watcher);
            }
            catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException or UnauthorizedAccessException)
            {
                // inotify limits reached or an odd mount: polling alone still picks changes up.
                Log.WatchUnavailable(_logger, directory, ex.Message);
            }
        }

        _poll = _options.TimeProvider.CreateTimer(_ => _ = ReloadIfChangedAsync(), null, PollInterval, PollInterval);
    }

    /// <summary>Loads, validates and applies the file now, changed or not (<c>POST /reload</c>).</summary>
    public Task<ReloadStatus> ReloadAsync(CancellationToken cancellationToken = default) => ReloadCoreAsync(force: true, cancellationToken);

    private void OnFileEvent(object sender, FileSystemEventArgs e)
    {
        // Any entry in the folder may be the one the config path resolves through (..data, the file, a
        // temp file renamed over it); the content hash decides whether anything really changed.
        if (Interlocked.Exchange(ref _pendingChange, 1) == 1)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                await Task.Delay(Debounce, _options.TimeProvider, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Volatile.Write(ref _pendingChange, 0);
            await ReloadIfChangedAsync().ConfigureAwait(false);
        });
    }

    private async Task ReloadIfChangedAsync()
    {
        try
        {
            await ReloadCoreAsync(force: false, _stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task<ReloadStatus> ReloadCoreAsync(bool force, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var hash = HashFile(_configPath);
            if (!force && (hash is null || (_loadedHash is not null && hash.AsSpan().SequenceEqual(_loadedHash))))
            {
                // Unchanged, or mid-swap (the file briefly missing): wait for the next event or poll.
                return _state.LastReload ?? new ReloadStatus(_options.TimeProvider.GetUtcNow(), ReloadStatus.Unchanged, []);
            }

            // Whatever the outcome (applied, rejected, failed), this content has been dealt with: the
            // watcher and the poll do not retry it, a changed file or POST /reload does.
            _loadedHash = hash;
            try
            {
                return await LoadAndApplyAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The file changed between reads, a provider threw, an identity could not be set up:
                // still a rejected version with its reason, never a silent one. Config files hold no
                // secrets (secrets live in files they name), so the message is safe to show.
                return Reject(_options.TimeProvider.GetUtcNow(), ["the configuration could not be loaded: " + ex.GetType().Name + ": " + ex.Message]);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<ReloadStatus> LoadAndApplyAsync()
    {
        var loaded = await new ConfigLoader(_options.TimeProvider, _tokenClient, _identityAccessor, _sourceLoggers).LoadAsync(_configPath, overrides: _options.ConfigOverrides).ConfigureAwait(false);
        var now = _options.TimeProvider.GetUtcNow();
        if (!loaded.IsValid)
        {
            return Reject(now, loaded.Errors.Select(e => e.Key + ": " + e.Message).ToArray());
        }

        var next = loaded.Snapshot!;
        var current = _state.Snapshot;
        var restartOnly = RestartOnlyChanges(current, next);
        // Unchanged (restart-only): the running bundles' stream, which the upstream client verifies
        // with, stays; the freshly compiled copy is released, also when the reload is rejected.
        if (!ReferenceEquals(next.SpiffeUpstreams, current.SpiffeUpstreams))
        {
            next.SpiffeUpstreams?.Dispose();
        }

        if (restartOnly.Count > 0)
        {
            return Reject(now, restartOnly);
        }

        next.SpiffeUpstreams = current.SpiffeUpstreams;

        var identity = _state.Identity;
        if (!SameIdentitySettings(current.Identity, next.Identity))
        {
            identity = next.Identity is null ? null : _identityFactory(next.Identity);
        }

        var status = new ReloadStatus(now, ReloadStatus.Applied, []);
        // A replaced identity is disposed at once: one still in use by a request answers with its
        // last status after Dispose, it does not throw.
        _state.Swap(next, identity, status, out var dropped)?.Dispose();
        _metrics.ConfigReload(ReloadStatus.Applied);

        Log.Reloaded(_logger, _configPath, next.Policies.Policies.Count, next.Credentials.Count, dropped.Count == 0 ? "none" : string.Join(", ", dropped));
        IssuerEndpointWarnings.Log(_logger, next);
        return status;
    }

    private ReloadStatus Reject(DateTimeOffset now, IReadOnlyList<string> reasons)
    {
        var status = new ReloadStatus(now, ReloadStatus.Rejected, reasons);
        _state.RecordReload(status);
        _metrics.ConfigReload(ReloadStatus.Rejected);
        Log.Rejected(_logger, _configPath, reasons.Count, string.Join("; ", reasons));
        return status;
    }

    /// <summary>
    /// What a running proxy cannot change in place: sockets already bound, the CA minting leaves, the
    /// upstream TLS trust and the audit sink, all set up at start. Everything else (policies,
    /// credentials, routes' upstreams, identity, labels) reloads live.
    /// </summary>
    private static List<string> RestartOnlyChanges(ProxySnapshot current, ProxySnapshot next)
    {
        var reasons = new List<string>();
        var restart = " changed; this needs a restart (the running version keeps serving)";
        if (!current.AdminEndPoint.Equals(next.AdminEndPoint))
        {
            reasons.Add(SecretlessProxyOptions.SectionName + ":Admin:Url" + restart);
        }

        if (!Equals(current.Admin.ProbeEndPoint, next.Admin.ProbeEndPoint))
        {
            reasons.Add(SecretlessProxyOptions.SectionName + ":Admin:ProbeUrl" + restart);
        }

        foreach (var name in current.Listeners.Keys.Union(next.Listeners.Keys, StringComparer.OrdinalIgnoreCase).Order(StringComparer.Ordinal))
        {
            var key = SecretlessProxyOptions.SectionName + ":Listeners:" + name;
            if (!current.Listeners.TryGetValue(name, out var a))
            {
                reasons.Add(key + " was added; new listeners need a restart (the running version keeps serving)");
            }
            else if (!next.Listeners.TryGetValue(name, out var b))
            {
                reasons.Add(key + " was removed; removing a listener needs a restart (the running version keeps serving)");
            }
            else if (a.Mode != b.Mode || !a.BindEndPoint.Equals(b.BindEndPoint))
            {
                reasons.Add(key + " (Mode or Url)" + restart);
            }
        }

        if (current.LocalCa != next.LocalCa)
        {
            reasons.Add(SecretlessProxyOptions.SectionName + ":LocalCa" + restart);
        }

        if (current.TrustedCaFile != next.TrustedCaFile)
        {
            reasons.Add(SecretlessProxyOptions.SectionName + ":Upstreams:TrustedCaFile" + restart);
        }

        if (current.SpiffeUpstreams?.Fingerprint != next.SpiffeUpstreams?.Fingerprint)
        {
            reasons.Add(SecretlessProxyOptions.SectionName + ":Upstreams:SpiffeTrust" + restart);
        }

        if (current.Audit != next.Audit)
        {
            reasons.Add(SecretlessProxyOptions.SectionName + ":Audit" + restart);
        }

        if (current.DrainTimeout != next.DrainTimeout)
        {
            // The host reads its shutdown timeout once, when it is built.
            reasons.Add(SecretlessProxyOptions.SectionName + ":Shutdown:DrainTimeout" + restart);
        }

        return reasons;
    }

    /// <summary>
    /// The folders whose entries can change what the config path reads: its own folder, and for
    /// every symlink on the way (the file itself, or a folder such as a ConfigMap's <c>..data</c>),
    /// the folder holding that link, following the chain a bounded number of hops.
    /// </summary>
    internal static IReadOnlyList<string> WatchedDirectories(string path)
    {
        var directories = new List<string>();
        var pending = new Queue<string>([path]);
        for (var hops = 0; pending.Count > 0 && hops < 16; hops++)
        {
            var current = pending.Dequeue();
            var parent = Path.GetDirectoryName(current);
            for (var component = current; parent is not null; component = parent, parent = Path.GetDirectoryName(parent))
            {
                FileSystemInfo info = Directory.Exists(component) ? new DirectoryInfo(component) : new FileInfo(component);
                if (info.LinkTarget is { } target)
                {
                    if (!directories.Contains(parent))
                    {
                        directories.Add(parent);
                    }

                    // The rest of the path below the link, re-rooted at its target.
                    pending.Enqueue(Path.GetFullPath(Path.Combine(parent, target)) + current[component.Length..]);
                    break;
                }
            }
        }

        var own = Path.GetDirectoryName(path)!;
        if (!directories.Contains(own))
        {
            directories.Insert(0, own);
        }

        return directories;
    }

    private static bool SameIdentitySettings(IWorkloadIdentitySettings? a, IWorkloadIdentitySettings? b) =>
        a is null ? b is null : a.SameAs(b);

    private static byte[]? HashFile(string path)
    {
        try
        {
            return SHA256.HashData(File.ReadAllBytes(path));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _stopping.Cancel();
        foreach (var watcher in _watchers)
        {
            watcher.Dispose();
        }

        if (_poll is not null)
        {
            await _poll.DisposeAsync().ConfigureAwait(false);
        }

        // Wait for a reload in progress so it does not touch a disposed state.
        await _gate.WaitAsync().ConfigureAwait(false);
        _gate.Release();
        _stopping.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.ConfigReloaded, LogLevel.Information, "Configuration {ConfigPath} reloaded: {PolicyCount} polic(ies), {CredentialCount} credential(s); cached credentials dropped: {DroppedCredentials}")]
        public static partial void Reloaded(ILogger logger, string configPath, int policyCount, int credentialCount, string droppedCredentials);

        [LoggerMessage(EventIds.ConfigReloadRejected, LogLevel.Error, "Configuration {ConfigPath} was not reloaded ({ErrorCount} problem(s)); the previous version keeps serving: {Reasons}")]
        public static partial void Rejected(ILogger logger, string configPath, int errorCount, string reasons);

        [LoggerMessage(EventIds.ConfigWatchUnavailable, LogLevel.Warning, "Cannot watch {Directory} for configuration changes ({Error}); polling every 5 s instead")]
        public static partial void WatchUnavailable(ILogger logger, string directory, string error);
    }
}
