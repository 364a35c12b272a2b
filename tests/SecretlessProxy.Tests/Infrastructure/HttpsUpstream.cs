using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A real HTTPS upstream on 127.0.0.1 with a certificate from a test CA. It records what arrived:
/// headers, the TLS SNI and any client certificate, which tells an intercepted tunnel (the proxy's
/// own TLS session) from a blind one (the client's session, end to end).
/// </summary>
public sealed class HttpsUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private HttpsUpstream(WebApplication app)
    {
        _app = app;
    }

    public ConcurrentQueue<ReceivedRequest> Received { get; } = new();

    public int Port { get; private set; }

    public static async Task<HttpsUpstream> StartAsync(X509Certificate2 certificate)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var sni = new ConcurrentDictionary<string, string>();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificateSelector = (connection, name) =>
            {
                sni[connection!.ConnectionId] = name ?? string.Empty;
                return certificate;
            },
            ClientCertificateMode = ClientCertificateMode.AllowCertificate,
            ClientCertificateValidation = (_, _, _) => true,
        })));
        var app = builder.Build();
        var upstream = new HttpsUpstream(app);
        app.Run(async context =>
        {
            upstream.Received.Enqueue(new ReceivedRequest(
                context.Request.Method,
                context.Request.Path + context.Request.QueryString,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
                sni.GetValueOrDefault(context.Connection.Id, string.Empty),
                context.Connection.ClientCertificate?.Subject));
            context.Response.ContentType = "text/plain";
            await context.Response.WriteAsync("upstream-ok");
        });
        await app.StartAsync();
        upstream.Port = new Uri(app.Urls.First()).Port;
        return upstream;
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    public sealed record ReceivedRequest(string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, string Sni, string? ClientCertificateSubject);
}
