using System.Text.Json;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Writes RFC 9457 problem details. Titles and details are built from names (policy, credential,
/// listener), never from values, so an error response cannot carry a secret.
/// </summary>
internal static class ProblemResponse
{
    /// <param name="retryAfter">Seconds, sent as <c>Retry-After</c> (RFC 9110 section 10.2.3) when the refusal is transient.</param>
    public static async Task WriteAsync(HttpContext context, int status, string type, string title, string detail, string? traceId = null, int? retryAfter = null)
    {
        if (context.Response.HasStarted)
        {
            return;
        }

        context.Response.Clear();
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/problem+json";
        context.Response.Headers.CacheControl = "no-store";
        if (retryAfter is { } seconds)
        {
            context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            // A URN rather than a URL: the proxy has no documentation site to point at.
            writer.WriteString("type", "urn:secretless-proxy:problem:" + type);
            writer.WriteString("title", title);
            writer.WriteNumber("status", status);
            writer.WriteString("detail", detail);
            if (traceId is not null)
            {
                writer.WriteString("traceId", traceId);
            }

            writer.WriteEndObject();
        }

        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }
}
