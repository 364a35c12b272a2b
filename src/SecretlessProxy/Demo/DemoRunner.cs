using System.Text.Json;
using SecretlessProxy.Hosting;

namespace SecretlessProxy.Demo;

/// <summary>
/// <c>secretless-proxy demo</c>: a real proxy with an embedded config, a demo API and a demo token
/// endpoint on loopback. Sends a few calls that carry no secret and shows what the API received.
/// </summary>
internal sealed class DemoRunner
{
    private readonly TextWriter _out;

    public DemoRunner(TextWriter output)
    {
        _out = output;
    }

    public async Task<int> RunAsync(bool exitAfterCalls, CancellationToken cancellationToken)
    {
        var dir = Directory.CreateTempSubdirectory("secretless-proxy-demo-");
        try
        {
            await using var backends = await DemoBackends.StartAsync(dir.FullName, cancellationToken).ConfigureAwait(false);
            var secretFile = Path.Combine(dir.FullName, "client-secret");
            await File.WriteAllTextAsync(secretFile, backends.ClientSecret + "\n", cancellationToken).ConfigureAwait(false);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(secretFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            var configFile = Path.Combine(dir.FullName, "demo.json");
            await File.WriteAllTextAsync(configFile, BuildConfig(backends, secretFile), cancellationToken).ConfigureAwait(false);

            await using var proxy = await ProxyApp.StartAsync(configFile, new ProxyAppOptions { ConsoleLogging = false }, cancellationToken).ConfigureAwait(false);
            var proxyUri = proxy.GetListenerUri("orders-api");

            await _out.WriteLineAsync("SecretlessProxy demo").ConfigureAwait(false);
            await _out.WriteLineAsync("  app calls      " + proxyUri + " (a localhost route, no secret in the app)").ConfigureAwait(false);
            await _out.WriteLineAsync("  proxy forwards " + backends.UpstreamUri + " (demo API)").ConfigureAwait(false);
            await _out.WriteLineAsync("  credential     OAuth2 client credentials from " + backends.TokenUri + " over the Unix socket " + backends.TokenSocket + ", client secret read from a file").ConfigureAwait(false);
            await _out.WriteLineAsync("  policy         orders-read: GET /v1/ on 127.0.0.1 -> Authorization: Bearer {token}; everything else denied").ConfigureAwait(false);
            await _out.WriteLineAsync().ConfigureAwait(false);

            using var client = new HttpClient { BaseAddress = proxyUri };
            await CallAsync(client, HttpMethod.Get, "/v1/orders", appAuthorization: null, cancellationToken).ConfigureAwait(false);
            await CallAsync(client, HttpMethod.Get, "/v1/orders/42", appAuthorization: "Bearer app-supplied-value", cancellationToken).ConfigureAwait(false);
            await CallAsync(client, HttpMethod.Post, "/v1/orders", appAuthorization: null, cancellationToken).ConfigureAwait(false);
            await CallAsync(client, HttpMethod.Get, "/admin/users", appAuthorization: null, cancellationToken).ConfigureAwait(false);

            await _out.WriteLineAsync("Token endpoint calls so far: " + backends.TokensIssued + " (the token is cached and refreshed before it expires).").ConfigureAwait(false);
            await _out.WriteLineAsync().ConfigureAwait(false);
            await _out.WriteLineAsync("Try it yourself while the demo runs:").ConfigureAwait(false);
            await _out.WriteLineAsync("  curl -s " + new Uri(proxyUri, "/v1/orders")).ConfigureAwait(false);
            await _out.WriteLineAsync("  curl -s -X DELETE " + new Uri(proxyUri, "/v1/orders/42") + "   # denied").ConfigureAwait(false);
            await _out.WriteLineAsync("  curl -s " + new Uri(proxy.AdminUri, "/credentials") + "   # credential state, never a value").ConfigureAwait(false);

            if (exitAfterCalls)
            {
                return 0;
            }

            await _out.WriteLineAsync("Press Ctrl-C to stop.").ConfigureAwait(false);
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            await _out.WriteLineAsync("Stopping.").ConfigureAwait(false);
            return 0;
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private async Task CallAsync(HttpClient client, HttpMethod method, string path, string? appAuthorization, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path);
        if (appAuthorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", appAuthorization);
        }

        using var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        var sent = appAuthorization is null ? "no credential" : "its own Authorization: " + appAuthorization;
        await _out.WriteLineAsync(method + " " + path + "  (app sent " + sent + ")").ConfigureAwait(false);
        using var json = JsonDocument.Parse(body);
        if (response.IsSuccessStatusCode)
        {
            var received = json.RootElement.GetProperty("authorization").GetString() ?? string.Empty;
            await _out.WriteLineAsync("  -> " + (int)response.StatusCode + " allowed; upstream received Authorization: " + Mask(received)).ConfigureAwait(false);
            if (appAuthorization is not null)
            {
                await _out.WriteLineAsync("     the app's header was " + (received.Contains(appAuthorization, StringComparison.Ordinal) ? "NOT replaced" : "replaced by the proxy's token")).ConfigureAwait(false);
            }
        }
        else
        {
            var detail = json.RootElement.TryGetProperty("detail", out var d) ? d.GetString() : body;
            await _out.WriteLineAsync("  -> " + (int)response.StatusCode + " " + response.ReasonPhrase + "; upstream not called: " + detail).ConfigureAwait(false);
        }

        await _out.WriteLineAsync().ConfigureAwait(false);
    }

    /// <summary>Shows the shape of the injected value, never the value.</summary>
    private static string Mask(string header)
    {
        var space = header.IndexOf(' ');
        if (space < 0)
        {
            return header.Length == 0 ? "(none)" : "**** (" + header.Length + " chars, masked)";
        }

        return header[..space] + " **** (" + (header.Length - space - 1) + " chars, masked)";
    }

    private static string BuildConfig(DemoBackends backends, string secretFile)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartObject("SecretlessProxy");
            w.WriteStartObject("Admin");
            w.WriteString("Url", "http://127.0.0.1:0");
            w.WriteEndObject();
            w.WriteStartObject("Listeners");
            w.WriteStartObject("orders-api");
            w.WriteString("Mode", "Route");
            w.WriteString("Url", "http://127.0.0.1:0");
            w.WriteString("Upstream", backends.UpstreamUri.ToString());
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartObject("Credentials");
            w.WriteStartObject("orders-token");
            w.WriteString("Source", "OAuth2ClientCredentials");
            w.WriteString("TokenUrl", backends.TokenUri.ToString());
            w.WriteString("UnixSocket", backends.TokenSocket);
            w.WriteString("ClientId", DemoBackends.ClientId);
            w.WriteString("ClientSecretFile", secretFile);
            w.WriteStartArray("Scopes");
            w.WriteStringValue("orders.read");
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartObject("Policies");
            w.WriteStartObject("orders-read");
            w.WriteStartObject("Match");
            w.WriteStartArray("Hosts");
            w.WriteStringValue("127.0.0.1");
            w.WriteEndArray();
            w.WriteStartArray("Methods");
            w.WriteStringValue("GET");
            w.WriteEndArray();
            w.WriteString("PathPrefix", "/v1/");
            w.WriteEndObject();
            w.WriteString("Credential", "orders-token");
            w.WriteStartObject("Inject");
            w.WriteString("Header", "Authorization");
            w.WriteString("Format", "Bearer {token}");
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteString("Unmatched", "Deny");
            w.WriteEndObject();
            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
