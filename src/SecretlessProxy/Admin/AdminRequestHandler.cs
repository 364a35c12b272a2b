using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SecretlessProxy.Hosting;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Admin;

/// <summary>
/// The admin port: <c>/healthz</c> (process alive), <c>/readyz</c> (listeners bound and config
/// loaded, with the last reload's outcome), <c>/credentials</c> (state and timing per credential,
/// never a value), <c>/decisions</c>, and from loopback <c>POST /reload</c>,
/// <c>POST /credentials/{name}/revoke</c> and <c>POST /quitquitquit</c>. <c>/metrics</c>
/// is served before this handler by the OpenTelemetry Prometheus middleware.
/// </summary>
internal sealed partial class AdminRequestHandler
{
    private readonly ProxyState _state;
    private readonly AuditLog _audit;
    private readonly ConfigReloader _reloader;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<AdminRequestHandler> _logger;

    public AdminRequestHandler(ProxyState state, AuditLog audit, ConfigReloader reloader, IHostApplicationLifetime lifetime, ILogger<AdminRequestHandler> logger)
    {
        _state = state;
        _audit = audit;
        _reloader = reloader;
        _lifetime = lifetime;
        _logger = logger;
    }

    public Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? string.Empty;
        if (HttpMethods.IsPost(context.Request.Method) && path.StartsWith("/credentials/", StringComparison.Ordinal) && path.EndsWith("/revoke", StringComparison.Ordinal))
        {
            return RevokeAsync(context, path["/credentials/".Length..^"/revoke".Length]);
        }

        if (HttpMethods.IsPost(context.Request.Method) && path == "/reload")
        {
            return ReloadAsync(context);
        }

        if (path == "/quitquitquit")
        {
            return QuitAsync(context);
        }

        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            context.Response.Headers.Allow = "GET, HEAD, POST";
            return Task.CompletedTask;
        }

        return context.Request.Path.Value switch
        {
            "/healthz" => WriteJsonAsync(context, 200, w => w.WriteString("status", "alive")),
            "/readyz" => ReadyAsync(context),
            "/credentials" => CredentialsAsync(context),
            "/decisions" => DecisionsAsync(context),
            _ => WriteJsonAsync(context, 404, w => w.WriteString("error", "not found; try /healthz, /readyz, /credentials, /decisions or /metrics")),
        };
    }

    /// <summary>
    /// <c>POST /credentials/{name}/revoke</c>: drops the cached value at once, so the next request
    /// fetches a new one. Accepted from loopback only: the admin port may face the pod network
    /// (for probes), and changing state is for the operator inside the pod.
    /// </summary>
    private Task RevokeAsync(HttpContext context, string name)
    {
        if (!FromLoopback(context))
        {
            return WriteJsonAsync(context, 403, w => w.WriteString("error", "revocation is accepted from loopback only"));
        }

        return _state.Cache.Revoke(name)
            ? WriteJsonAsync(context, 200, w => w.WriteString("revoked", name))
            : WriteJsonAsync(context, 404, w => w.WriteString("error", "no credential named '" + name + "'"));
    }

    /// <summary>
    /// <c>POST /reload</c>: loads and validates the config file now. 200 with the outcome when applied,
    /// 422 with every reason when rejected (the running version keeps serving). Loopback only.
    /// </summary>
    private async Task ReloadAsync(HttpContext context)
    {
        if (!FromLoopback(context))
        {
            await WriteJsonAsync(context, 403, w => w.WriteString("error", "reload is accepted from loopback only")).ConfigureAwait(false);
            return;
        }

        var status = await _reloader.ReloadAsync(context.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(context, status.IsRejected ? 422 : 200, w => WriteReload(w, status)).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>POST /quitquitquit</c> (the name Envoy, Istio and the Cloud SQL Auth Proxy use): stops the
    /// proxy as SIGTERM would, for a Job whose app is done, or a sidecar that is not a native one.
    /// The answer goes out first; then readiness turns 503, the listeners stop accepting and the
    /// requests in flight get <c>Shutdown:DrainTimeout</c> to finish. Loopback only, POST only (a
    /// GET from a browser or a crawler must not stop anything).
    /// </summary>
    private async Task QuitAsync(HttpContext context)
    {
        if (!HttpMethods.IsPost(context.Request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            context.Response.Headers.Allow = "POST";
            return;
        }

        if (!FromLoopback(context))
        {
            await WriteJsonAsync(context, 403, w => w.WriteString("error", "quitquitquit is accepted from loopback only")).ConfigureAwait(false);
            return;
        }

        Log.ShutdownRequested(_logger, context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
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

    private static bool FromLoopback(HttpContext context) =>
        context.Connection.RemoteIpAddress is { } remote &&
        (System.Net.IPAddress.IsLoopback(remote) || (remote.IsIPv4MappedToIPv6 && System.Net.IPAddress.IsLoopback(remote.MapToIPv4())));

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
