using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using SecretlessProxy.Admin;
using SecretlessProxy.Attestation;
using SecretlessProxy.Certificates;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Forwarding;
using SecretlessProxy.Identity;
using SecretlessProxy.Listeners;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Hosting;

/// <summary>
/// A running proxy: Kestrel with one endpoint per listener plus the admin endpoint, all in one
/// host so they share the credential cache and the configuration snapshot.
/// </summary>
internal sealed partial class ProxyApp : IAsyncDisposable
{
    private const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    private readonly WebApplication _app;
    private readonly Dictionary<string, ListenOptions> _listenerEndpoints;
    private readonly ListenOptions _adminEndpoint;
    private readonly ListenOptions? _probeEndpoint;
    private readonly HttpMessageInvoker _tokenClient;
    private readonly HttpMessageInvoker _upstreamClient;

    private ProxyApp(WebApplication app, ProxyState state, Dictionary<string, ListenOptions> listenerEndpoints, ListenOptions adminEndpoint, ListenOptions? probeEndpoint, HttpMessageInvoker tokenClient, HttpMessageInvoker upstreamClient)
    {
        _probeEndpoint = probeEndpoint;
        Reloader = app.Services.GetRequiredService<ConfigReloader>();
        _app = app;
        State = state;
        _listenerEndpoints = listenerEndpoints;
        _adminEndpoint = adminEndpoint;
        _tokenClient = tokenClient;
        _upstreamClient = upstreamClient;
    }

    public ProxyState State { get; }

    /// <summary>The host's logging (the <c>run --</c> wrapper logs through it).</summary>
    public ILoggerFactory LoggerFactory => _app.Services.GetRequiredService<ILoggerFactory>();

    /// <summary>Watches the config file and applies valid new versions (also <c>POST /reload</c>).</summary>
    public ConfigReloader Reloader { get; }

    /// <summary>The address the admin endpoint is bound to (the real port when the config said 0).</summary>
    /// <exception cref="InvalidOperationException">The admin endpoint is a Unix socket: see <see cref="AdminBinding"/>.</exception>
    public IPEndPoint AdminEndPoint => _adminEndpoint.EndPoint as IPEndPoint ?? throw new InvalidOperationException("The admin endpoint is the Unix socket " + _adminEndpoint.EndPoint + ".");

    /// <summary>The admin endpoint's binding, a Unix socket included.</summary>
    public EndPoint AdminBinding => _adminEndpoint.EndPoint;

    /// <summary>The probe endpoint's address (<c>Admin:ProbeUrl</c>), or null when none is configured.</summary>
    public IPEndPoint? ProbeEndPoint => (IPEndPoint?)_probeEndpoint?.EndPoint;

    public Uri? ProbeUri => ProbeEndPoint is { } probe ? ToUri(probe) : null;

    public IPEndPoint GetListenerEndPoint(string name) => (IPEndPoint)_listenerEndpoints[name].EndPoint;

    /// <summary>The bound address of any listener, a Unix socket included.</summary>
    public EndPoint GetListenerBinding(string name) => _listenerEndpoints[name].EndPoint;

    public Uri GetListenerUri(string name) => ToUri(GetListenerEndPoint(name));

    /// <summary>Every listener's bound address (a port chosen by the system when the config said 0).</summary>
    public IEnumerable<EndPoint> ListenerBindings => _listenerEndpoints.Values.Select(e => e.EndPoint);

    public Uri AdminUri => ToUri(AdminEndPoint);

    /// <summary>Cancelled when stopping begins (SIGTERM, Ctrl-C, <c>POST /quitquitquit</c>), before the listeners close.</summary>
    public CancellationToken Stopping => _app.Lifetime.ApplicationStopping;

    /// <summary>
    /// Completes when the host has stopped (Ctrl-C, SIGTERM, <c>POST /quitquitquit</c>, or
    /// <see cref="StopAsync"/>): the listeners closed and the requests in flight drained, for up to
    /// <c>Shutdown:DrainTimeout</c>.
    /// </summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Loads and validates <paramref name="configPath"/>, then binds every listener.</summary>
    /// <exception cref="InvalidConfigurationException">The file is invalid; nothing was started.</exception>
    public static async Task<ProxyApp> StartAsync(string configPath, ProxyAppOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ProxyAppOptions();

        // First, before the configuration (and with it any secret file) is read.
        var dumpableError = options.NotDumpable ? ProcessHardening.MakeNotDumpable() : null;
        var tokenClient = HttpClients.CreateTokenClient();
        HttpMessageInvoker? upstreamClient = null;
        var identity = new WorkloadIdentityAccessor();
        var sourceLoggers = new DeferredLoggerFactory();
        try
        {
            var loaded = await new ConfigLoader(options.TimeProvider, tokenClient, identity, sourceLoggers).LoadAsync(configPath, overrides: options.ConfigOverrides).ConfigureAwait(false);
            if (!loaded.IsValid)
            {
                throw new InvalidConfigurationException(loaded.Errors);
            }

            if (options.OwnsProcess && loaded.Snapshot!.Listeners.Values.All(l => l.Http is null) && Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
            {
                // A database-only proxy splices small messages: with completions inline on the epoll
                // thread a message costs no thread-pool hand-off (measured with pgbench: about half
                // the proxy's CPU per transaction, 0.4x -> 0.7x direct). The runtime reads the
                // variable when its socket engine starts, which is after this point; an operator's
                // own setting wins.
                Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
            }

            var upstreamFactory = HttpClients.CreateUpstreamClientFactory(loaded.Snapshot!.TrustedCaFile, loaded.Snapshot.SpiffeUpstreams);
            upstreamClient = upstreamFactory.CreateClient();
            var app = Build(configPath, loaded, options, tokenClient, upstreamFactory, upstreamClient, identity, sourceLoggers);
            await app.StartCoreAsync(cancellationToken).ConfigureAwait(false);
            if (options.NotDumpable)
            {
                var logger = app.LoggerFactory.CreateLogger<ProxyApp>();
                if (dumpableError is null)
                {
                    Log.NotDumpable(logger, Environment.ProcessId);
                }
                else
                {
                    Log.StillDumpable(logger, dumpableError);
                }
            }

            return app;
        }
        catch
        {
            tokenClient.Dispose();
            upstreamClient?.Dispose();
            throw;
        }
    }

    private static ProxyApp Build(string configPath, ConfigLoadResult loaded, ProxyAppOptions options, HttpMessageInvoker tokenClient, UpstreamClientFactory upstreamFactory, HttpMessageInvoker upstreamClient, WorkloadIdentityAccessor identityAccessor, DeferredLoggerFactory sourceLoggers)
    {
        var snapshot = loaded.Snapshot!;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });

        // Only the proxy's own file (and environment overrides) configure it: no appsettings.json
        // picked up from wherever the process happens to start.
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddConfiguration(loaded.Configuration);

        ConfigureLogging(builder.Logging, loaded.Configuration, options);
        builder.Services.AddMetrics();
        ConfigureTelemetry(builder.Services, options);

        var listenerEndpoints = new Dictionary<string, ListenOptions>(StringComparer.OrdinalIgnoreCase);
        ListenOptions? adminEndpoint = null;
        ListenOptions? probeEndpoint = null;
        // With the runtime's inline socket completions on (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1,
        // an operator's choice), Kestrel's pipes run inline too, so a spliced database message costs
        // no thread-pool hop at all (measured: 40 -> 20-30 us of proxy CPU per pgbench transaction).
        // Off by default: HTTP does more work per request and then queues on the epoll thread.
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) == "1")
        {
            builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
        }

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Kestrel's request-head timeout is server-wide: the strictest HTTP listener's
            // HandshakeTimeout, read at start, so no listener waits longer for a head than it asked.
            var httpListeners = snapshot.Listeners.Values.Where(l => l.Http is not null).ToList();
            if (httpListeners.Count > 0)
            {
                kestrel.Limits.RequestHeadersTimeout = httpListeners.Min(l => l.Limits.HandshakeTimeout);
            }

            foreach (var listener in snapshot.Listeners.Values)
            {
                var feature = new ListenerFeature(listener.Name);
                if (listener.BindEndPoint is UnixDomainSocketEndPoint unix)
                {
                    RemoveStaleSocket(unix.ToString());
                }

                kestrel.Listen(listener.BindEndPoint, listen =>
                {
                    listenerEndpoints[listener.Name] = listen;
                    // First: a connection over the listener's MaxConnections costs nothing more.
                    listen.Use(next =>
                    {
                        var limiter = listen.ApplicationServices.GetRequiredService<ConnectionLimiter>();
                        return connection => limiter.OnConnectionAsync(connection, next, listener.Name);
                    });
                    listen.Use(next =>
                    {
                        var callers = listen.ApplicationServices.GetRequiredService<LoopbackCallerResolver>();
                        var state = listen.ApplicationServices.GetRequiredService<ProxyState>();
                        return connection =>
                        {
                            connection.Features.Set(feature);
                            connection.Features.Set(CallerFeatureFor(connection, callers, () => state.Snapshot.Policies.UsesCaller));
                            return next(connection);
                        };
                    });
                    ListenerKindRegistry.For(listener).Configure(listen, listener);
                });
            }

            // The admin endpoint: loopback or a Unix socket only (SnapshotCompiler.Admin refuses any
            // other address). Its connections carry their caller, for Admin:AllowedUids.
            if (snapshot.AdminEndPoint is UnixDomainSocketEndPoint adminSocket)
            {
                RemoveStaleSocket(adminSocket.ToString());
            }

            kestrel.Listen(snapshot.AdminEndPoint, listen =>
            {
                adminEndpoint = listen;
                listen.Use(next =>
                {
                    var callers = listen.ApplicationServices.GetRequiredService<LoopbackCallerResolver>();
                    return connection =>
                    {
                        connection.Features.Set(ListenerFeature.Admin);

                        // The admin authorizer reads only the uid, which a socket keeps for life:
                        // nothing to attest at accept or re-check per request.
                        connection.Features.Set(CallerFeatureFor(connection, callers, static () => false));
                        return next(connection);
                    };
                });
            });

            // The probe endpoint may face the pod network: the handler serves it /healthz, /readyz and
            // /metrics only, whatever the path or method.
            if (snapshot.Admin.ProbeEndPoint is { } probe)
            {
                kestrel.Listen(probe, listen =>
                {
                    probeEndpoint = listen;
                    listen.Use(next => connection =>
                    {
                        connection.Features.Set(ListenerFeature.Probes);
                        return next(connection);
                    });
                });
            }
        });

        // Stopping (SIGTERM, Ctrl-C, POST /quitquitquit): Kestrel stops accepting at once and lets
        // requests in flight finish for this long, then aborts them.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = snapshot.DrainTimeout);
        builder.Services.AddHttpForwarder();
        builder.Services.AddSingleton<ProxyMetrics>();
        builder.Services.AddSingleton(sp => new AuditLog(snapshot.Audit, options.TimeProvider, sp.GetRequiredService<ILogger<AuditLog>>(), OtlpLogsRequested ? sp.GetRequiredService<ILoggerFactory>().CreateLogger(AuditLog.ExportCategory) : null));
        builder.Services.AddSingleton(sp => options.CallerScanBudget is { } budget
            ? new LoopbackCallerResolver(options.TimeProvider, sp.GetRequiredService<ILogger<LoopbackCallerResolver>>()) { ScanBudget = budget }
            : new LoopbackCallerResolver(options.TimeProvider, sp.GetRequiredService<ILogger<LoopbackCallerResolver>>()));
        builder.Services.AddSingleton<Func<IWorkloadIdentitySettings, IWorkloadIdentitySource>>(sp =>
            settings => settings.Start(new IdentityServices(options.TimeProvider, tokenClient, sp.GetRequiredService<ILoggerFactory>())));
        builder.Services.AddSingleton(sp =>
        {
            var metrics = sp.GetRequiredService<ProxyMetrics>();
            var cache = new Credentials.CredentialCache(snapshot.Credentials, options.TimeProvider, sp.GetRequiredService<ILoggerFactory>(), metrics);
            metrics.ObserveCredentialExpiry(cache.GetStatuses, options.TimeProvider);
            var leaves = snapshot.LocalCa is { } ca
                ? new LeafCertificateCache(LocalCertificateAuthority.FromSettings(ca, options.TimeProvider), options.TimeProvider, ca.LeafLifetime, ca.MaxLeafCertificates, metrics)
                : null;
            if (leaves is not null)
            {
                metrics.ObserveLeafCertificates(() => leaves.Count);
            }

            identityAccessor.Identity = snapshot.Identity is { } settings ? sp.GetRequiredService<Func<IWorkloadIdentitySettings, IWorkloadIdentitySource>>()(settings) : null;
            var proxyState = new ProxyState(snapshot, cache, leaves, identityAccessor);
            metrics.ObserveSigningBuffers(() => proxyState.SigningBuffers.Held, () => proxyState.SigningBuffers.Capacity);
            return proxyState;
        });
        builder.Services.AddSingleton(sp => new ConfigReloader(
            configPath,
            options,
            tokenClient,
            identityAccessor,
            sourceLoggers,
            sp.GetRequiredService<ProxyState>(),
            sp.GetRequiredService<Func<IWorkloadIdentitySettings, IWorkloadIdentitySource>>(),
            sp.GetRequiredService<ProxyMetrics>(),
            sp.GetRequiredService<ILogger<ConfigReloader>>()));
        builder.Services.AddSingleton(sp =>
        {
            // Disposed with the container; a reload retires the clients of certificates no policy names.
            var clients = new ClientCertificateClients(upstreamFactory, options.TimeProvider, sp.GetRequiredService<ILoggerFactory>());
            sp.GetRequiredService<ProxyState>().SnapshotChanged += clients.Retain;
            return clients;
        });
        builder.Services.AddSingleton(new CredentialUseLog(options.TimeProvider.GetUtcNow()));
        builder.Services.AddSingleton(sp => new AccessPipeline(sp.GetRequiredService<ProxyMetrics>(), sp.GetRequiredService<AuditLog>(), options.TimeProvider, sp.GetRequiredService<ILogger<AccessPipeline>>(), sp.GetRequiredService<CredentialUseLog>()));
        builder.Services.AddSingleton(sp => new ProxyRequestHandler(
            sp.GetRequiredService<ProxyState>(),
            sp.GetRequiredService<Yarp.ReverseProxy.Forwarder.IHttpForwarder>(),
            upstreamClient,
            sp.GetRequiredService<ClientCertificateClients>(),
            sp.GetRequiredService<ProxyMetrics>(),
            sp.GetRequiredService<AccessPipeline>(),
            sp.GetRequiredService<ILogger<ProxyRequestHandler>>()));
        builder.Services.AddSingleton<AdminAuthorizer>();
        builder.Services.AddSingleton(sp => new AdminRequestHandler(sp.GetRequiredService<ProxyState>(), sp.GetRequiredService<AuditLog>(), sp.GetRequiredService<ConfigReloader>().ReloadAsync, sp.GetRequiredService<AdminAuthorizer>(), sp.GetRequiredService<IHostApplicationLifetime>(), sp.GetRequiredService<ILogger<AdminRequestHandler>>(), sp.GetRequiredService<CredentialUseLog>()));
        builder.Services.AddSingleton(sp => new ConnectionRefusals(sp.GetRequiredService<ProxyMetrics>(), options.TimeProvider, sp.GetRequiredService<ILogger<ConnectionRefusals>>()));
        builder.Services.AddSingleton<ConnectionLimiter>();
        foreach (var kind in ListenerKindRegistry.All)
        {
            kind.AddServices(builder.Services, options.TimeProvider);
        }

        var app = builder.Build();
        // Sources compiled before the host existed log through the host's logging from now on.
        sourceLoggers.Attach(app.Services.GetRequiredService<ILoggerFactory>());
        var proxy = app.Services.GetRequiredService<ProxyRequestHandler>();
        var admin = app.Services.GetRequiredService<AdminRequestHandler>();

        // Prometheus text on the admin and probe endpoints only; the predicate is the whole cost on proxied requests.
        app.UseOpenTelemetryPrometheusScrapingEndpoint(context =>
            context.Features.Get<ListenerFeature>() is { IsAdmin: true } && context.Request.Path == "/metrics");

        // One terminal delegate, no routing: the connection already says which listener this is.
        app.Run(context =>
        {
            var listener = context.Features.Get<ListenerFeature>();
            return listener is null || listener.IsAdmin ? admin.HandleAsync(context) : proxy.HandleAsync(context, listener.ListenerName!);
        });

        // Kestrel fills in the ListenOptions when it reads its options, which happens at Build.
        // Resolved now so that a local CA that cannot be created or loaded fails the start, not a request.
        var state = app.Services.GetRequiredService<ProxyState>();
        return new ProxyApp(app, state, listenerEndpoints, adminEndpoint ?? throw new InvalidOperationException("The admin endpoint was not configured."), probeEndpoint, tokenClient, upstreamClient);
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        var logger = _app.Services.GetRequiredService<ILogger<ProxyApp>>();
        await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        foreach (var (name, endpoint) in _listenerEndpoints)
        {
            var listener = State.Snapshot.Listeners[name];
            Log.ListenerBound(logger, name, listener.Mode.ToString(), endpoint.EndPoint.ToString()!, ListenerKindRegistry.For(listener).DescribeDestination(listener));
        }

        Log.Started(logger, AdminBinding.ToString()!, ProbeEndPoint?.ToString() ?? "none", _listenerEndpoints.Count, State.Snapshot.Policies.Policies.Count, State.Snapshot.Credentials.Count);
        IssuerEndpointWarnings.Log(logger, State.Snapshot);
        Reloader.Start();
        // Runs before the server stops: /readyz says 503 while the listeners close and requests drain.
        _app.Lifetime.ApplicationStopping.Register(() =>
        {
            State.MarkNotReady("draining");
            Log.Draining(logger, State.Snapshot.DrainTimeout);
        });
        _app.Lifetime.ApplicationStopped.Register(() => Log.Stopped(logger));
        State.MarkReady();
    }

    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        State.MarkNotReady("stopping");
        await _app.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        State.MarkNotReady("stopping");
        // Leases held at issuers (Vault) are given back while the upstream clients still exist.
        await State.Cache.ReleaseAllAsync(CancellationToken.None).ConfigureAwait(false);
        // The host's container owns ProxyState (and with it the credential cache) and the reloader,
        // and disposes them (the reloader first: it was created last).
        await _app.DisposeAsync().ConfigureAwait(false);
        _tokenClient.Dispose();
        _upstreamClient.Dispose();
    }

    private static void ConfigureLogging(ILoggingBuilder logging, IConfiguration configuration, ProxyAppOptions options)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(LogLevel.Information);
        // Framework chatter at Information (request start/finish, forwarder internals) adds cost and
        // noise per request; the proxy logs its own decisions and failures.
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Yarp", LogLevel.Warning);
        logging.AddFilter("System.Net.Http", LogLevel.Warning);
        logging.AddConfiguration(configuration.GetSection("Logging"));
        if (options.ConsoleLogging)
        {
            // One line per entry by default; Logging:Console:FormatterName=json gives JSON lines for
            // log collectors (with every structured field as a property).
            if (options.LogToStandardError)
            {
                logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            }

            if (string.Equals(configuration["Logging:Console:FormatterName"], "json", StringComparison.OrdinalIgnoreCase))
            {
                logging.AddJsonConsole(o => o.UseUtcTimestamp = true);
            }
            else
            {
                logging.AddSimpleConsole(o =>
                {
                    o.SingleLine = true;
                    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                    o.UseUtcTimestamp = true;
                });
            }
        }

        // Audit records go out as OpenTelemetry log records when OTLP logs are asked for, and
        // nowhere else as log lines: the audit sink and /decisions already hold them.
        logging.AddFilter(AuditLog.ExportCategory, LogLevel.None);
        if (OtlpLogsRequested)
        {
            logging.AddOpenTelemetry(o => o.AddOtlpExporter());
            logging.AddFilter<OpenTelemetryLoggerProvider>(null, LogLevel.None);
            logging.AddFilter<OpenTelemetryLoggerProvider>(AuditLog.ExportCategory, LogLevel.Information);
        }

        options.ConfigureLogging?.Invoke(logging);
    }

    /// <summary>OTLP log export (of audit records) by the same variables as the other signals: OTEL_LOGS_EXPORTER, or an OTLP endpoint.</summary>
    private static bool OtlpLogsRequested => OtlpRequested("OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT");

    /// <summary>
    /// Metrics are always collected (Prometheus on the admin port, OTLP too when configured).
    /// Tracing is on when the standard OTEL_* variables ask for an exporter (or a test hook does),
    /// and off otherwise, so an unobserved proxy pays nothing for spans.
    /// </summary>
    /// <summary>The meter the .NET runtime publishes its own metrics on (since .NET 9).</summary>
    internal const string RuntimeMeterName = "System.Runtime";

    private static void ConfigureTelemetry(IServiceCollection services, ProxyAppOptions options)
    {
        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") ?? "secretless-proxy"))
            .WithMetrics(metrics =>
            {
                // The runtime's own meter (GC collections and pause time, heap size, thread-pool
                // threads and queue length, lock contentions): what an operator reads first when the
                // proxy's tail latency or memory moves. Its instruments are read at collection only.
                metrics.AddMeter(ProxyMetrics.MeterName, RuntimeMeterName).AddPrometheusExporter();
                if (OtlpRequested("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
                {
                    metrics.AddOtlpExporter();
                }

                options.ConfigureMetrics?.Invoke(metrics);
            });

        var otlpTraces = OtlpRequested("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        if (!otlpTraces && options.ConfigureTracing is null)
        {
            return;
        }

        otel.WithTracing(tracing =>
        {
            tracing.AddSource(ProxyTelemetry.SourceName)
                // Query strings are recorded only by the proxy's own span, and only where a listener
                // opts in: the framework spans drop them (an injected query credential included).
                .AddAspNetCoreInstrumentation(o => o.EnrichWithHttpRequest = static (activity, _) => activity.SetTag("url.query", null))
                .AddHttpClientInstrumentation(o => o.EnrichWithHttpRequestMessage = static (activity, request) =>
                {
                    if (request.RequestUri is { } uri)
                    {
                        activity.SetTag("url.full", uri.GetLeftPart(UriPartial.Path));
                    }
                });
            if (otlpTraces)
            {
                tracing.AddOtlpExporter();
            }

            options.ConfigureTracing?.Invoke(tracing);
        });
    }

    /// <summary>The OpenTelemetry specification's rules for choosing the OTLP exporter from the environment.</summary>
    private static bool OtlpRequested(string exporterVariable, string signalEndpointVariable)
    {
        if (string.Equals(Environment.GetEnvironmentVariable("OTEL_SDK_DISABLED"), "true", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var exporter = Environment.GetEnvironmentVariable(exporterVariable);
        if (exporter is not null)
        {
            return exporter.Split(',').Any(e => e.Trim().Equals("otlp", StringComparison.OrdinalIgnoreCase));
        }

        return !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")) ||
               !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(signalEndpointVariable));
    }

    /// <summary>
    /// Who is calling, resolved by the kernel's facts about this connection: SO_PEERCRED on a Unix
    /// socket, /proc/net/tcp for loopback TCP; anything else (another host, another pod) is unknown.
    /// </summary>
    /// <remarks>
    /// While a policy has a Caller condition the caller is attested at accept and re-checked on
    /// every request (see <see cref="CallerFeature"/>): an attestation taken only at the first
    /// request leaves the connecting process the time to exec(2) an allowed binary or hand the
    /// socket to one first. Without such a policy nothing is scanned until the audit trail asks.
    /// </remarks>
    private static CallerFeature CallerFeatureFor(Microsoft.AspNetCore.Connections.ConnectionContext connection, LoopbackCallerResolver callers, Func<bool> usesCaller)
    {
        var attestNow = usesCaller();
        if (connection.RemoteEndPoint is IPEndPoint remote && connection.LocalEndPoint is IPEndPoint local)
        {
            return Loopback.IsLoopback(remote.Address)
                ? new CallerFeature(() => callers.AttestTcp(remote, local), callers.Recheck, usesCaller, attestNow, () => callers.AttestTcpAsync(remote, local))
                : new CallerFeature(Caller.Unknown);
        }

        if (connection.LocalEndPoint is UnixDomainSocketEndPoint && connection.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionSocketFeature>()?.Socket is { } socket)
        {
            // Always at accept: SO_PEERCRED names the pid that connected, and the longer the wait,
            // the more time that process has to exec(2) an allowed binary after handing the socket
            // to a child. One getsockopt and a few reads, no scan.
            return new CallerFeature(() => callers.AttestUnixPeer(socket), callers.Recheck, usesCaller, attestNow: true);
        }

        return new CallerFeature(Caller.Unknown);
    }

    /// <summary>A socket file left by a previous run would fail the bind; anything that is not a socket is left alone (and the bind fails with a clear error).</summary>
    private static void RemoveStaleSocket(string path)
    {
        try
        {
            if (File.Exists(path) && IsSocket(path))
            {
                File.Delete(path);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        static bool IsSocket(string p)
        {
            // .NET has no file-type query for sockets; connecting tells a live socket (leave it: the
            // bind then fails loudly) from a stale one (connection refused: safe to remove).
            using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(p));
                return false;
            }
            catch (System.Net.Sockets.SocketException e)
            {
                return e.SocketErrorCode == System.Net.Sockets.SocketError.ConnectionRefused;
            }
        }
    }

    private static Uri ToUri(IPEndPoint endPoint)
    {
        // A wildcard bind is reachable on loopback; IPv6 literals need brackets in a URL.
        var address = endPoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
            : endPoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
            : endPoint.Address;
        var host = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "[" + address + "]" : address.ToString();
        return new Uri("http://" + host + ":" + endPoint.Port + "/");
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.ListenerBound, LogLevel.Information, "{Mode} listener {Listener} bound to {EndPoint}, forwarding to {Upstream}")]
        public static partial void ListenerBound(ILogger logger, string listener, string mode, string endPoint, string upstream);

        [LoggerMessage(EventIds.ProxyStarted, LogLevel.Information, "SecretlessProxy started: admin on {AdminEndPoint}, probes on {ProbeEndPoint}, {ListenerCount} listener(s), {PolicyCount} polic(ies), {CredentialCount} credential(s)")]
        public static partial void Started(ILogger logger, string adminEndPoint, string probeEndPoint, int listenerCount, int policyCount, int credentialCount);

        [LoggerMessage(EventIds.Draining, LogLevel.Information, "SecretlessProxy stopping: not ready, no new connections, draining requests in flight for up to {DrainTimeout}")]
        public static partial void Draining(ILogger logger, TimeSpan drainTimeout);

        [LoggerMessage(EventIds.Stopped, LogLevel.Information, "SecretlessProxy stopped")]
        public static partial void Stopped(ILogger logger);

        [LoggerMessage(EventIds.ProcessNotDumpable, LogLevel.Information, "Process {Pid} is not dumpable: processes of its uid cannot read its memory, environment or descriptors through /proc")]
        public static partial void NotDumpable(ILogger logger, int pid);

        [LoggerMessage(EventIds.ProcessStillDumpable, LogLevel.Warning, "The process could not be made non-dumpable ({Reason}): processes of its uid can read its memory through /proc")]
        public static partial void StillDumpable(ILogger logger, string reason);
    }
}
