using System.IO.Compression;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A hostile or careless upstream (real Kestrel on 127.0.0.1:0, HTTPS when given a certificate)
/// that reflects what it received, the way debug endpoints, error pages and TRACE do (by the end of
/// the path, so that policies can tell requests apart by their prefix):
/// <list type="bullet">
/// <item><c>/echo/headers</c>: every request header back as <c>X-Echo-*</c>, the Authorization or
/// X-Api-Key value in a Set-Cookie and a WWW-Authenticate challenge, and in the reason phrase.</item>
/// <item><c>/echo/body</c>: the request line and headers in the body, one byte per write, each
/// flushed (chunked; <c>?length=1</c> sets Content-Length first).</item>
/// <item><c>/echo/basic</c>: the decoded Basic user and password in the body.</item>
/// <item><c>/echo/gzip</c>: the same body as <c>/echo/body</c>, gzip-compressed.</item>
/// <item><c>/echo/split</c>: <c>before {credential} after</c>, sent up to the middle of the
/// credential, then the rest only once the test calls <see cref="ReleaseSplit"/>: the proxy has
/// surely read the value in two pieces.</item>
/// </list>
/// <see cref="LastBody"/> holds the exact bytes of the last body it sent.
/// </summary>
public sealed class EchoUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TaskCompletionSource _splitRelease = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private EchoUpstream(WebApplication app)
    {
        _app = app;
    }

    public string Url => _app.Urls.First();

    public int Port => new Uri(Url).Port;

    public byte[] LastBody { get; private set; } = [];

    /// <summary>Lets <c>/echo/split</c> send the rest of its body.</summary>
    public void ReleaseSplit() => _splitRelease.TrySetResult();

    public static async Task<EchoUpstream> StartAsync(X509Certificate2? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (certificate is not null)
            {
                listen.UseHttps(certificate);
            }
        }));
        var app = builder.Build();
        var upstream = new EchoUpstream(app);
        app.Run(upstream.HandleAsync);
        await app.StartAsync();
        return upstream;
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        var reflected = new StringBuilder();
        reflected.Append(request.Method).Append(' ').Append(request.Path).Append(request.QueryString).Append('\n');
        foreach (var (name, value) in request.Headers)
        {
            reflected.Append(name).Append(": ").Append(value.ToString()).Append('\n');
        }

        var credential = request.Headers.Authorization.ToString();
        if (credential.Length == 0)
        {
            credential = request.Headers["X-Api-Key"].ToString();
        }

        switch ("/echo/" + request.Path.Value?.Split("/echo/").Last())
        {
            case "/echo/headers":
                foreach (var (name, value) in request.Headers)
                {
                    response.Headers["X-Echo-" + name] = value;
                }

                response.Headers.SetCookie = "debug=" + credential + "; Path=/; HttpOnly";
                response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\", error_description=\"token " + credential + " expired\"";
                response.StatusCode = 401;
                context.Features.Get<IHttpResponseFeature>()!.ReasonPhrase = "Bad credential " + credential;
                await WriteAsync(response, Encoding.UTF8.GetBytes("denied"), contentLength: true);
                break;

            case "/echo/basic":
                var encoded = credential.StartsWith("Basic ", StringComparison.Ordinal) ? credential["Basic ".Length..] : string.Empty;
                var pair = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
                var colon = pair.IndexOf(':');
                await WriteAsync(response, Encoding.UTF8.GetBytes("user=" + pair[..colon] + "\npassword=" + pair[(colon + 1)..] + "\n"), contentLength: false);
                break;

            case "/echo/split":
                var split = Encoding.UTF8.GetBytes("before " + credential + " after\n");
                var middle = "before ".Length + (credential.Length / 2);
                LastBody = split;
                response.ContentType = "text/plain";
                await response.Body.WriteAsync(split.AsMemory(0, middle));
                await response.Body.FlushAsync();
                await _splitRelease.Task;
                await response.Body.WriteAsync(split.AsMemory(middle));
                break;

            case "/echo/gzip":
                using (var compressed = new MemoryStream())
                {
                    await using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
                    {
                        await gzip.WriteAsync(Encoding.UTF8.GetBytes(reflected.ToString()));
                    }

                    response.Headers.ContentEncoding = "gzip";
                    response.ContentType = "text/plain";
                    await WriteAsync(response, compressed.ToArray(), contentLength: true);
                }

                break;

            default:
                response.ContentType = "text/plain";
                await WriteAsync(response, Encoding.UTF8.GetBytes(reflected.ToString()), contentLength: request.Query.ContainsKey("length"));
                break;
        }
    }

    /// <summary>One byte per write, each flushed: every form of the secret is split across reads.</summary>
    private async Task WriteAsync(HttpResponse response, byte[] body, bool contentLength)
    {
        LastBody = body;
        if (contentLength)
        {
            response.ContentLength = body.Length;
        }

        for (var i = 0; i < body.Length; i++)
        {
            await response.Body.WriteAsync(body.AsMemory(i, 1));
            await response.Body.FlushAsync();
        }
    }

    public ValueTask DisposeAsync()
    {
        ReleaseSplit();
        return _app.DisposeAsync();
    }
}
