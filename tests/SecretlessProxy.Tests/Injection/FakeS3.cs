using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using SecretlessProxy.Tests.Configuration;

namespace SecretlessProxy.Tests.Injection;

/// <summary>
/// A plain-HTTP upstream on 127.0.0.1 that records each request exactly as it arrived (method, raw
/// target, every header line, body) and answers like S3's ListObjectsV2. <see cref="VerifyAsync"/>
/// hands a recorded request to botocore (verify_sigv4.py) to check its signature independently.
/// </summary>
public sealed class FakeS3 : IAsyncDisposable
{
    public const string ListBucketResult =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" +
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>" +
        "<Contents><Key>hello.txt</Key><LastModified>2026-11-23T10:00:00.000Z</LastModified><ETag>\"5d41402abc4b2a76b9719d911017c592\"</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>";

    private readonly WebApplication _app;
    private volatile TaskCompletionSource? _hold;
    private volatile TaskCompletionSource? _arrivedWhileHeld;

    private FakeS3(WebApplication app)
    {
        _app = app;
    }

    public ConcurrentQueue<Received> Requests { get; } = new();

    public Uri Url { get; private set; } = null!;

    public static async Task<FakeS3> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var fake = new FakeS3(app);
        app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var headers = new List<KeyValuePair<string, string>>();
            foreach (var (name, values) in context.Request.Headers)
            {
                foreach (var value in values)
                {
                    headers.Add(new(name, value ?? string.Empty));
                }
            }

            var rawTarget = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
            fake.Requests.Enqueue(new Received(context.Request.Method, rawTarget, headers, body.ToArray()));
            if (fake._hold is { } hold)
            {
                fake._arrivedWhileHeld?.TrySetResult();
                await hold.Task;
            }

            context.Response.ContentType = "application/xml";
            // Declared for HEAD too, as S3 does: awscli's s3 cp reads the source's size from HeadObject.
            var answer = System.Text.Encoding.UTF8.GetBytes(ListBucketResult);
            context.Response.ContentLength = answer.Length;
            context.Response.Headers.LastModified = "Mon, 23 Nov 2026 10:00:00 GMT";
            context.Response.Headers.ETag = "\"5d41402abc4b2a76b9719d911017c592\"";
            if (!HttpMethods.IsHead(context.Request.Method))
            {
                await context.Response.Body.WriteAsync(answer);
            }
        });
        await app.StartAsync();
        fake.Url = new Uri(app.Urls.First());
        return fake;
    }

    /// <summary>Runs botocore's signer over a received request: "match", or "mismatch: why" and the canonical request.</summary>
    public static async Task<string> VerifyAsync(Received request, string accessKey, string secretKey, string? token, string service, string region)
    {
        var host = request.Header("Host") ?? throw new InvalidOperationException("no Host header received");
        var input = Path.Combine(Path.GetTempPath(), "sigv4-" + Guid.NewGuid().ToString("N") + ".json");
        var json = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["method"] = request.Method,
            ["url"] = "http://" + host + request.RawTarget,
            ["headers"] = request.Headers.Select(h => new[] { h.Key, h.Value }).ToArray(),
            ["body_b64"] = Convert.ToBase64String(request.Body),
            ["access_key"] = accessKey,
            ["secret_key"] = secretKey,
            ["token"] = token,
            ["service"] = service,
            ["region"] = region,
        });
        await File.WriteAllTextAsync(input, json);
        try
        {
            var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(RepoPaths.Combine("tests", "SecretlessProxy.Tests", "Injection", "verify_sigv4.py"));
            start.ArgumentList.Add(input);
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            var output = (await stdout).Trim() + (await stderr).Trim();
            return output;
        }
        finally
        {
            File.Delete(input);
        }
    }

    /// <summary>
    /// From now on each request is recorded (its whole body read) and then held unanswered until
    /// <see cref="Release"/>; the task completes when the first one has arrived.
    /// </summary>
    public Task Hold()
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _arrivedWhileHeld = arrived;
        _hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return arrived.Task;
    }

    /// <summary>Answers every held request, and every later one at once.</summary>
    public void Release()
    {
        var hold = _hold;
        _hold = null;
        hold?.TrySetResult();
    }

    public ValueTask DisposeAsync()
    {
        Release();
        return _app.DisposeAsync();
    }

    public sealed record Received(string Method, string RawTarget, IReadOnlyList<KeyValuePair<string, string>> Headers, byte[] Body)
    {
        public string? Header(string name)
        {
            var values = Headers.Where(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).ToArray();
            return values.Length == 0 ? null : string.Join(",", values);
        }

        /// <summary>The names in the Authorization header's SignedHeaders list.</summary>
        public IReadOnlyList<string> SignedHeaders()
        {
            var auth = Header("Authorization") ?? string.Empty;
            var at = auth.IndexOf("SignedHeaders=", StringComparison.Ordinal);
            if (at < 0)
            {
                return [];
            }

            var list = auth[(at + "SignedHeaders=".Length)..];
            return list[..list.IndexOf(',')].Split(';');
        }
    }
}
