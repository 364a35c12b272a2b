using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A real HTTPS upstream on 127.0.0.1 that requires a client certificate issued by the test CA and
/// records the thumbprint each request's connection presented. It speaks HTTP/1.1 and answers
/// <c>Connection: close</c>, so every request arrives on a new connection (a new TLS handshake).
/// </summary>
public sealed class MutualTlsUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private MutualTlsUpstream(WebApplication app)
    {
        _app = app;
    }

    /// <summary>The client certificate thumbprint of each request that arrived, in order.</summary>
    public ConcurrentQueue<string> Thumbprints { get; } = new();

    /// <summary>The connection each request arrived on, in order.</summary>
    public ConcurrentQueue<string> Connections { get; } = new();

    public int Port { get; private set; }

    public string Url => "https://localhost:" + Port;

    /// <param name="clientCa">The CA client certificates must chain to (default: the test CA).</param>
    /// <param name="serverCertificate">The certificate the upstream presents (default: one for localhost from the test CA).</param>
    public static async Task<MutualTlsUpstream> StartAsync(TestPki pki, X509Certificate2? clientCa = null, X509Certificate2? serverCertificate = null)
    {
        serverCertificate ??= pki.IssueServer();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
        {
            // HTTP/1.1 only: Connection: close has no meaning in HTTP/2, whose one connection would carry every request.
            listen.Protocols = HttpProtocols.Http1;
            listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificate = serverCertificate,
                ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                // Only the CA is trusted; intermediates count only if the client sent them.
                ClientCertificateValidation = (certificate, chain, _) => IssuedBy(clientCa ?? pki.Ca, certificate, chain?.ChainPolicy.ExtraStore),
            });
        }));
        var app = builder.Build();
        var upstream = new MutualTlsUpstream(app);
        app.Run(async context =>
        {
            upstream.Thumbprints.Enqueue(context.Connection.ClientCertificate?.Thumbprint ?? "none");
            upstream.Connections.Enqueue(context.Connection.Id);
            context.Response.Headers.Connection = "close";
            context.Response.ContentType = "text/plain";
            await context.Response.WriteAsync("upstream-ok");
        });
        await app.StartAsync();
        upstream.Port = new Uri(app.Urls.First()).Port;
        return upstream;
    }

    private static bool IssuedBy(X509Certificate2 ca, X509Certificate2 certificate, X509Certificate2Collection? sent)
    {
        using var chain = new X509Chain();
        if (sent is not null)
        {
            chain.ChainPolicy.ExtraStore.AddRange(sent);
        }

        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = DateTime.Now;
        return chain.Build(certificate);
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
