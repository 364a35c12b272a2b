using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// An upstream (real Kestrel on 127.0.0.1:0) that holds every request until the test releases it,
/// so a test can keep a request in flight for exactly as long as it needs, without sleeping.
/// </summary>
public sealed class HeldUpstream : IAsyncDisposable
{
    public const string Body = "released";

    private readonly WebApplication _app;
    private readonly TaskCompletionSource _received = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private HeldUpstream(WebApplication app) => _app = app;

    /// <summary>Completes when the first request has arrived (and is being held).</summary>
    public Task Received => _received.Task;

    public string Url => _app.Urls.First();

    public static async Task<HeldUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var upstream = new HeldUpstream(app);
        app.Run(async context =>
        {
            upstream._received.TrySetResult();
            await upstream._release.Task;
            context.Response.StatusCode = 200;
            await context.Response.WriteAsync(Body);
        });
        await app.StartAsync();
        return upstream;
    }

    /// <summary>Lets every held request (and every later one) answer 200.</summary>
    public void Release() => _release.TrySetResult();

    public async ValueTask DisposeAsync()
    {
        Release();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
