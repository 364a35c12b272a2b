using System.Text.Json;
using SecretlessProxy.Core;
using SecretlessProxy.Forwarding;
using SecretlessProxy.Governance;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Admin;

/// <summary>
/// The admin endpoints. On <c>Admin:Url</c> (loopback or a Unix socket): <c>/healthz</c> (process
/// alive), <c>/readyz</c> (listeners bound and config loaded, with the last reload's outcome),
/// <c>/credentials</c> (state and timing per credential, never a value), <c>/inventory</c> (each
/// credential's reach and its uses since start), <c>/decisions</c>, and
/// <c>POST /reload</c> and <c>POST /credentials/{name}/revoke</c> for a caller
/// <see cref="AdminAuthorizer"/> accepts, and <c>POST /quitquitquit</c> from loopback. On
/// <c>Admin:ProbeUrl</c> (which may face the pod network): <c>/healthz</c> and <c>/readyz</c> only.
/// <c>/metrics</c> is served on both before this handler, by the OpenTelemetry Prometheus middleware.
/// </summary>
internal sealed partial class AdminRequestHandler
{
    private readonly ProxyState _state;
    private readonly AuditLog _audit;
    private readonly Func<CancellationToken, Task<ReloadStatus>> _reload;
    private readonly AdminAuthorizer _authorizer;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<AdminRequestHandler> _logger;
    private readonly CredentialUseLog _uses;

    public AdminRequestHandler(ProxyState state, AuditLog audit, Func<CancellationToken, Task<ReloadStatus>> reload, AdminAuthorizer authorizer, IHostApplicationLifetime lifetime, ILogger<AdminRequestHandler> logger, CredentialUseLog uses)
    {
        _uses = uses;
        _state = state;
        _audit = audit;
        _reload = reload;
        _authorizer = authorizer;
        _lifetime = lifetime;
        _logger = logger;
    }

    public Task HandleAsync(HttpContext context)
    {
        // Only a connection the admin endpoint accepted gets the full set; anything else (the probe
        // endpoint, or a connection no endpoint marked) gets what may face the network.
        if (context.Features.Get<ListenerFeature>() is not { IsAdmin: true, ServesProbesOnly: false })
        {
            return ProbeAsync(context);
        }

        var path = context.Request.Path.Value ?? string.Empty;
        if (path == "/quitquitquit")
        {
            return QuitAsync(context);
        }

        if (HttpMethods.IsPost(context.Request.Method))
        {
            // Every POST but /quitquitquit changes state (or may, in a later version): authorised
            // first, so an unknown path tells an unauthorised caller nothing either.
            return PostAsync(context, path);
        }

        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            context.Response.Headers.Allow = "GET, HEAD, POST";
            return Task.CompletedTask;
        }

        return path switch
        {
            "/healthz" => HealthAsync(context),
            "/readyz" => ReadyAsync(context),
            "/credentials" => CredentialsAsync(context),
            "/decisions" => DecisionsAsync(context),
            "/inventory" => InventoryAsync(context),
            _ => WriteJsonAsync(context, 404, w => w.WriteString("error", "not found; try /healthz, /readyz, /credentials, /inventory, /decisions or /metrics")),
        };
    }

    /// <summary>
    /// The probe endpoint: what the kubelet and a metrics scraper need and nothing that names a
    /// destination, a caller or a credential, since every pod that can reach the pod IP can call it.
    /// </summary>
    private Task ProbeAsync(HttpContext context)
    {
        if (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method))
        {
            switch (context.Request.Path.Value)
            {
                case "/healthz":
                    return HealthAsync(context);
                case "/readyz":
                    return ReadyAsync(context);
            }
        }

        return WriteJsonAsync(context, 404, w => w.WriteString("error", "not found; this endpoint serves /healthz, /readyz and /metrics only"));
    }

    private static Task HealthAsync(HttpContext context) => WriteJsonAsync(context, 200, w => w.WriteString("status", "alive"));

    private async Task PostAsync(HttpContext context, string path)
    {
        var admin = _state.Snapshot.Admin;
        if (!FromLocal(context, admin))
        {
            await ProblemResponse.WriteAsync(context, 403, "admin-not-local", "Admin call refused", "state-changing admin calls are accepted on loopback or the admin Unix socket only").ConfigureAwait(false);
            return;
        }

        if (await _authorizer.AuthorizeAsync(context, admin).ConfigureAwait(false) is { } refusal)
        {
            if (refusal.Challenge)
            {
                // RFC 6750 section 3: a 401 names the scheme; error="invalid_token" when one was sent.
                // Set as the headers go out: the problem writer clears the response before writing.
                var challenge = refusal.Type == "admin-token-invalid"
                    ? "Bearer realm=\"secretless-proxy-admin\", error=\"invalid_token\""
                    : "Bearer realm=\"secretless-proxy-admin\"";
                context.Response.OnStarting(() =>
                {
                    context.Response.Headers.WWWAuthenticate = challenge;
                    return Task.CompletedTask;
                });
            }

            await ProblemResponse.WriteAsync(context, refusal.Status, refusal.Type, refusal.Title, refusal.Detail).ConfigureAwait(false);
            return;
        }

        if (path.StartsWith("/credentials/", StringComparison.Ordinal) && path.EndsWith("/revoke", StringComparison.Ordinal) && path.Length >= "/credentials/".Length + "/revoke".Length)
        {
            await RevokeAsync(context, path["/credentials/".Length..^"/revoke".Length]).ConfigureAwait(false);
        }
        else if (path == "/reload")
        {
            await ReloadAsync(context).ConfigureAwait(false);
        }
        else
        {
            await WriteJsonAsync(context, 404, w => w.WriteString("error", "not found; POST /reload, /credentials/{name}/revoke or /quitquitquit")).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <c>POST /credentials/{name}/revoke</c>: drops the cached value at once, so the next request
    /// fetches a new one, and answers once the source has revoked what it holds at its issuer (a
    /// Vault lease; bounded). Authorised by <see cref="PostAsync"/>.
    /// </summary>
    private async Task RevokeAsync(HttpContext context, string name)
    {
        if (await _state.Cache.RevokeAndWaitAsync(name).ConfigureAwait(false))
        {
            await WriteJsonAsync(context, 200, w => w.WriteString("revoked", name)).ConfigureAwait(false);
        }
        else
        {
            await WriteJsonAsync(context, 404, w => w.WriteString("error", "no credential named '" + name + "'")).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <c>POST /reload</c>: loads and validates the config file now. 200 with the outcome when applied,
    /// 422 with every reason when rejected (the running version keeps serving). Authorised by
    /// <see cref="PostAsync"/>.
    /// </summary>
    private async Task ReloadAsync(HttpContext context)
    {
        var status = await _reload(context.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(context, status.IsRejected ? 422 : 200, w => WriteReload(w, status)).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>POST /quitquitquit</c> (the name Envoy, Istio and the Cloud SQL Auth Proxy use): stops the
    /// proxy as SIGTERM would, for a Job whose app is done, or a sidecar that is not a native one.
    /// The answer goes out first; then readiness turns 503, the listeners stop accepting and the
    /// requests in flight get <c>Shutdown:DrainTimeout</c> to finish. Loopback (or the admin Unix
    /// socket) only, no token, POST only (a GET from a browser or a crawler must not stop anything).
    /// </summary>
    private async Task QuitAsync(HttpContext context)
    {
        if (!HttpMethods.IsPost(context.Request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            context.Response.Headers.Allow = "POST";
            return;
        }

        // Open to every local caller without a token, by design: a Job's app ends its plain-container
        // sidecar this way and should need no secret to do it. Stopping takes the proxy's service
        // away but reveals nothing and changes no policy or credential; the admin endpoint is never
        // bound beyond loopback or a Unix socket (see SnapshotCompiler.Admin).
        if (!FromLocal(context, _state.Snapshot.Admin))
        {
            await WriteJsonAsync(context, 403, w => w.WriteString("error", "quitquitquit is accepted from loopback only")).ConfigureAwait(false);
            return;
        }

        Log.ShutdownRequested(_logger, context.Connection.RemoteIpAddress?.ToString() ?? "the admin unix socket");
        // After the response is on the wire: stopping waits for this request like any other in flight.
        context.Response.OnCompleted(() =>
        {
            _lifetime.StopApplication();
            return Task.CompletedTask;
        });
        var drain = _state.Snapshot.DrainTimeout;
        await WriteJsonAsync(context, 200, w =>
        {
            w.WriteString("status", "stopping");
            w.WriteString("drainTimeout", drain.ToString("c", System.Globalization.CultureInfo.InvariantCulture));
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// Ready while the listeners are bound. A rejected reload does not make the proxy unready (the last
    /// good version still serves, and an unready sidecar would take the whole pod out of service):
    /// it is reported here as <c>lastReload</c> with its reasons, for operators and alerts.
    /// </summary>
    private Task ReadyAsync(HttpContext context)
    {
        var ready = _state.IsReady;
        return WriteJsonAsync(context, ready ? 200 : 503, w =>
        {
            w.WriteString("status", ready ? "ready" : "not ready");
            if (!ready)
            {
                w.WriteStartArray("reasons");
                w.WriteStringValue(_state.NotReadyReason);
                w.WriteEndArray();
            }

            w.WriteNumber("listeners", _state.Snapshot.Listeners.Count);
            if (_state.LastReload is { } reload)
            {
                w.WriteStartObject("lastReload");
                WriteReload(w, reload);
                w.WriteEndObject();
            }
        });
    }

    private static void WriteReload(Utf8JsonWriter w, ReloadStatus status)
    {
        w.WriteString("outcome", status.Outcome);
        w.WriteString("at", status.At);
        w.WriteStartArray("reasons");
        foreach (var reason in status.Reasons)
        {
            w.WriteStringValue(reason);
        }

        w.WriteEndArray();
    }

    /// <summary>
    /// A loopback peer, or a peer of the admin Unix socket (which has no IP address). Configuration
    /// already keeps the admin endpoint off other addresses; this holds should that ever change.
    /// </summary>
    private static bool FromLocal(HttpContext context, AdminSettings admin) =>
        context.Connection.RemoteIpAddress is { } remote
            ? Loopback.IsLoopback(remote)
            : admin.EndPoint is System.Net.Sockets.UnixDomainSocketEndPoint;

    private Task CredentialsAsync(HttpContext context) => WriteJsonAsync(context, 200, w =>
    {
        w.WriteStartArray("credentials");
        foreach (var status in _state.Cache.GetStatuses())
        {
            w.WriteStartObject();
            w.WriteString("name", status.Name);
            w.WriteString("source", status.Source);
            w.WriteString("state", status.State);
            WriteTime(w, "expiresAt", status.ExpiresAt);
            WriteTime(w, "lastRefresh", status.LastRefresh);
            if (status.LastError is null)
            {
                w.WriteNull("lastError");
            }
            else
            {
                w.WriteString("lastError", status.LastError);
            }

            WriteTime(w, "lastErrorAt", status.LastErrorAt);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    });

    /// <summary>
    /// <c>GET /inventory</c>: the inventory of the configuration now applied (as the <c>inventory</c>
    /// command prints it as JSON), with each credential's uses since start per destination and caller
    /// and the lifetime of the value in the cache. Served where <c>/credentials</c> is: the admin
    /// endpoint only, never the probe endpoint, since it names destinations and callers.
    /// </summary>
    private async Task InventoryAsync(HttpContext context)
    {
        var report = CredentialInventory.WithRunTime(CredentialInventory.Build(_state.Snapshot), _uses, _state.Cache.GetStatuses());
        var body = JsonSerializer.SerializeToUtf8Bytes(report, InventoryJsonContext.Default.InventoryReport);
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentLength = body.Length;
        if (!HttpMethods.IsHead(context.Request.Method))
        {
            await context.Response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
        }
    }

    /// <summary>The most recent decisions, newest first; <c>?limit=N</c> (default 100, at most the ring's size).</summary>
    private Task DecisionsAsync(HttpContext context)
    {
        var limit = int.TryParse(context.Request.Query["limit"], out var n) && n > 0 ? Math.Min(n, AuditLog.RecentCapacity) : 100;
        return WriteJsonAsync(context, 200, w =>
        {
            w.WriteStartArray("decisions");
            foreach (var record in _audit.Recent(limit))
            {
                record.WriteTo(w);
            }

            w.WriteEndArray();
        });
    }

    private static void WriteTime(Utf8JsonWriter writer, string name, DateTimeOffset? value)
    {
        if (value is { } v)
        {
            writer.WriteString(name, v);
        }
        else
        {
            writer.WriteNull(name);
        }
    }

    private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> body)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentLength = buffer.WrittenCount;
        if (!HttpMethods.IsHead(context.Request.Method))
        {
            await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.ShutdownRequested, LogLevel.Information, "POST /quitquitquit from {Remote}: stopping")]
        public static partial void ShutdownRequested(ILogger logger, string remote);
    }
}
