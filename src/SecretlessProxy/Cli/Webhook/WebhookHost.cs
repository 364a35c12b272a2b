using System.Net;
using System.Security.Authentication;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// The webhook's server: Kestrel on one TLS endpoint (HTTP/1.1 and HTTP/2, as the API server
/// negotiates), <c>POST /mutate</c> for admission reviews and <c>GET /healthz</c> for the kubelet.
/// </summary>
internal sealed class WebhookHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ListenOptions _endpoint;
    private readonly WebhookCertificate _certificate;

    private WebhookHost(WebApplication app, ListenOptions endpoint, WebhookCertificate certificate)
    {
        _app = app;
        _endpoint = endpoint;
        _certificate = certificate;
    }

    /// <summary>The bound address (the real port when the URL said 0).</summary>
    public IPEndPoint EndPoint => (IPEndPoint)_endpoint.EndPoint;

    /// <exception cref="System.Security.Cryptography.CryptographicException">The certificate or key does not load.</exception>
    /// <exception cref="IOException">A file cannot be read, or the address is in use.</exception>
    public static async Task<WebhookHost> StartAsync(WebhookOptions options, Action<ILoggingBuilder> configureLogging, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        // Flags alone configure the webhook: no appsettings.json from wherever the process starts.
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        configureLogging(builder.Logging);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<AdmissionHandler>();

        // Loaded after Build (for the host's logger) and before Kestrel binds, which is when this
        // configuration runs: a missing or mismatched pair fails the start with its reason.
        WebhookCertificate? certificate = null;
        ListenOptions? endpoint = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBytes;
            kestrel.Listen(options.EndPoint, listen =>
            {
                endpoint = listen;
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(new TlsHandshakeCallbackOptions
                {
                    OnConnection = _ => ValueTask.FromResult(new System.Net.Security.SslServerAuthenticationOptions
                    {
                        ServerCertificateContext = certificate!.Current,
                        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                        ApplicationProtocols = [System.Net.Security.SslApplicationProtocol.Http2, System.Net.Security.SslApplicationProtocol.Http11],
                    }),
                });
            });
        });

        var app = builder.Build();
        var handler = app.Services.GetRequiredService<AdmissionHandler>();
        app.MapPost("/mutate", (RequestDelegate)handler.HandleAsync);
        app.MapGet("/healthz", static context => context.Response.WriteAsync("ok\n", context.RequestAborted));
        try
        {
            certificate = WebhookCertificate.Load(options.CertificateFile, options.KeyFile, app.Services.GetRequiredService<ILogger<WebhookCertificate>>());
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            certificate?.Dispose();
            throw;
        }

        return new WebhookHost(app, endpoint!, certificate);
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _certificate.Dispose();
    }
}
