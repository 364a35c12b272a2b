using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace SecretlessProxy.Demo;

/// <summary>
/// The demo's stand-ins for the outside world, on loopback: an API that reports which credential
/// headers reached it, and an OAuth2 token endpoint that checks the client secret.
/// </summary>
internal sealed class DemoBackends : IAsyncDisposable
{
    public const string ClientId = "demo-orders-service";

    private readonly WebApplication _app;
    private int _tokensIssued;

    private DemoBackends(WebApplication app, string clientSecret)
    {
        _app = app;
        ClientSecret = clientSecret;
    }

    public string ClientSecret { get; }

    public int TokensIssued => Volatile.Read(ref _tokensIssued);

    public Uri UpstreamUri { get; private set; } = null!;

    public Uri TokenUri { get; private set; } = null!;

    /// <summary>The Unix socket the token endpoint is reached on: a loopback port could be bound by any local process first.</summary>
    public string TokenSocket { get; private set; } = null!;

    /// <param name="socketDirectory">A directory only this process writes, for the token endpoint's socket.</param>
    public static async Task<DemoBackends> StartAsync(string socketDirectory, CancellationToken cancellationToken)
    {
        var socket = Path.Combine(socketDirectory, "token.sock");
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(socket);
        });
        var app = builder.Build();
        var backends = new DemoBackends(app, "demo-secret-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant());

        app.Run(async context =>
        {
            if (context.Request.Path == "/oauth/token" && HttpMethods.IsPost(context.Request.Method))
            {
                await backends.IssueTokenAsync(context).ConfigureAwait(false);
                return;
            }

            // The demo API: report what arrived, so the demo can show what the upstream received.
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            using (var w = new Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                w.WriteString("method", context.Request.Method);
                w.WriteString("path", context.Request.Path.Value);
                w.WriteString("authorization", context.Request.Headers.Authorization.ToString());
                w.WriteEndObject();
            }

            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(buffer.WrittenMemory).ConfigureAwait(false);
        });

        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = new Uri(app.Urls.First(u => u.StartsWith("http://127.0.0.1:", StringComparison.Ordinal)));
        backends.UpstreamUri = new Uri("http://127.0.0.1:" + address.Port);
        backends.TokenUri = new Uri("http://localhost/oauth/token");
        backends.TokenSocket = socket;
        return backends;
    }

    private async Task IssueTokenAsync(HttpContext context)
    {
        var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(ClientId + ":" + ClientSecret));
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(context.Request.Headers.Authorization.ToString()), Encoding.UTF8.GetBytes(expected)))
        {
            context.Response.StatusCode = 401;
            await context.Response.WriteAsJsonAsync(new Dictionary<string, string> { ["error"] = "invalid_client" }, DemoJsonContext.Default.DictionaryStringString).ConfigureAwait(false);
            return;
        }

        Interlocked.Increment(ref _tokensIssued);
        var token = "demo-token-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync("{\"access_token\":\"" + token + "\",\"token_type\":\"Bearer\",\"expires_in\":300}").ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
