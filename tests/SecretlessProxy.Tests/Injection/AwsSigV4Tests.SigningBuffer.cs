using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Injection;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Injection;

/// <summary>
/// Bodies held for payload signing share one budget per proxy (<c>Limits:SigningBufferBytes</c>):
/// what the app sees when it is full (503, Retry-After) or too small for one body (413), that the
/// upstream still gets exactly the bytes sent, and that every reserved byte comes back, an aborted
/// upload included, as the exported gauge shows.
/// </summary>
[Collection(ProcessMetricsCollection.Name)]
public sealed partial class AwsSigV4Tests
{
    private const long SmallBudget = 1024 * 1024;
    private const string HeldGauge = "secretless_proxy_signing_buffer_held_bytes";
    private const string CapacityGauge = "secretless_proxy_signing_buffer_capacity_bytes";
    private const string RefusalCounter = "secretless_proxy_signing_buffer_refusals_total";

    [Fact]
    public async Task Concurrent_signed_bodies_beyond_the_budget_get_503_with_Retry_After_while_the_held_one_reaches_the_upstream_exactly()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "execute-api", ["Region"] = "eu-west-1" }, configure: LimitSigningBuffers(SmallBudget));
        Assert.Equal(SmallBudget, await MetricAsync(proxy, CapacityGauge));
        var held = RandomNumberGenerator.GetBytes(700_000);

        // The first body is buffered, signed and sent; the upstream keeps its request open, so its
        // 700000 bytes stay reserved.
        var arrived = _upstream.Hold();
        var first = proxy.SendAsync(new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/prod/held")) { Content = new ByteArrayContent(held) });
        await arrived.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(700_000, await WaitForMetricAsync(proxy, HeldGauge, v => v == 700_000));

        // Four more at once, two with Content-Length and two chunked: none fits beside the first.
        var others = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => proxy.SendAsync(new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/prod/other-" + i))
        {
            Content = i % 2 == 0
                ? new ByteArrayContent(RandomNumberGenerator.GetBytes(700_000))
                : new StreamContent(new NonSeekableStream(RandomNumberGenerator.GetBytes(700_000))),
        })));
        foreach (var (response, problem) in others)
        {
            AssertProblem(response, problem, HttpStatusCode.ServiceUnavailable, "signing-buffer-full");
            Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        }

        _upstream.Release();
        var (ok, _) = await first;
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);

        // Only the first reached the upstream: every byte as sent, declared, and signed.
        var received = Assert.Single(_upstream.Requests);
        Assert.Equal("/prod/held", received.RawTarget);
        Assert.Equal(held, received.Body);
        Assert.Equal("700000", received.Header("Content-Length"));
        Assert.Equal(Sha256Hex(held), received.Header("X-Amz-Content-Sha256"));
        var keys = Assert.Single(_e2e!.Sts.IssuedKeys);
        Assert.Equal("match", await FakeS3.VerifyAsync(received, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken, "execute-api", "eu-west-1"));

        Assert.Equal(4, await WaitForMetricAsync(proxy, RefusalCounter, v => v == 4, "policy=\"s3\"", "reason=\"signing-buffer-full\""));
        Assert.Equal(4, proxy.Logs.Entries.Count(e => e.EventId.Id == EventIds.SigningBufferFull));
        Assert.Equal(0, await WaitForMetricAsync(proxy, HeldGauge, v => v == 0));
    }

    [Fact]
    public async Task A_signed_body_larger_than_the_whole_budget_gets_413_signing_body_too_large_declared_or_chunked()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "execute-api", ["Region"] = "eu-west-1" }, configure: LimitSigningBuffers(SmallBudget));

        var (declared, declaredProblem) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/prod/big"))
        {
            Content = new ByteArrayContent(new byte[2 * SmallBudget]),
        });
        var (chunked, chunkedProblem) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/prod/big"))
        {
            Content = new StreamContent(new NonSeekableStream(new byte[2 * SmallBudget])),
        });

        AssertProblem(declared, declaredProblem, HttpStatusCode.RequestEntityTooLarge, "signing-body-too-large");
        AssertProblem(chunked, chunkedProblem, HttpStatusCode.RequestEntityTooLarge, "signing-body-too-large");
        Assert.Null(declared.Headers.RetryAfter);
        Assert.Empty(_upstream.Requests);
        Assert.Equal(2, await WaitForMetricAsync(proxy, RefusalCounter, v => v == 2, "policy=\"s3\"", "reason=\"signing-body-too-large\""));
        Assert.Equal(0, await WaitForMetricAsync(proxy, HeldGauge, v => v == 0));

        // A body the budget can hold still goes through, signed.
        var fits = RandomNumberGenerator.GetBytes((int)SmallBudget);
        var (ok, _) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/prod/fits")) { Content = new ByteArrayContent(fits) });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(fits, Assert.Single(_upstream.Requests).Body);
    }

    [Fact]
    public async Task A_chunked_signed_body_is_hashed_as_it_arrives_and_the_upstream_gets_it_exactly_with_its_length()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "execute-api", ["Region"] = "eu-west-1" });
        // Not a multiple of the 64 KiB segment: the last segment is partly filled.
        var body = RandomNumberGenerator.GetBytes((5 * SignedBody.SegmentSize) + 4321);

        var (response, _) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Post, proxy.Listener("s3", "/prod/chunked"))
        {
            Content = new StreamContent(new NonSeekableStream(body)) { Headers = { { "Content-Type", "application/octet-stream" } } },
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = Assert.Single(_upstream.Requests);
        Assert.Equal(body, received.Body);
        Assert.Equal(body.Length.ToString(CultureInfo.InvariantCulture), received.Header("Content-Length"));
        Assert.Null(received.Header("Transfer-Encoding"));
        Assert.Equal(Sha256Hex(body), received.Header("X-Amz-Content-Sha256"));
        var keys = Assert.Single(_e2e!.Sts.IssuedKeys);
        Assert.Equal("match", await FakeS3.VerifyAsync(received, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken, "execute-api", "eu-west-1"));
        Assert.Equal(0, await WaitForMetricAsync(proxy, HeldGauge, v => v == 0));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_upload_the_app_aborts_gives_back_every_byte_it_reserved_and_sends_nothing(bool declaredLength)
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "execute-api", ["Region"] = "eu-west-1" });
        using var client = new TcpClient();
        await client.ConnectAsync(proxy.App.GetListenerEndPoint("s3"));
        var stream = client.GetStream();
        var part = RandomNumberGenerator.GetBytes(200_000);
        var head = "PUT /prod/aborted HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (declaredLength ? "Content-Length: 600000\r\n\r\n" : "Transfer-Encoding: chunked\r\n\r\n" + part.Length.ToString("x", CultureInfo.InvariantCulture) + "\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(part);
        await stream.FlushAsync();

        // Declared: the whole length is reserved before reading; chunked: segments as the bytes arrive.
        var reserved = await WaitForMetricAsync(proxy, HeldGauge, v => declaredLength ? v == 600_000 : v >= part.Length);
        Assert.True(declaredLength ? reserved == 600_000 : reserved >= part.Length, "held " + reserved + " bytes while the upload was in progress");

        // The app goes away mid-body (a reset, not an orderly end of the body).
        client.LingerState = new LingerOption(true, 0);
        client.Close();

        Assert.Equal(0, await WaitForMetricAsync(proxy, HeldGauge, v => v == 0));
        Assert.Empty(_upstream.Requests);

        // The proxy goes on signing other bodies.
        var (ok, _) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/prod/after")) { Content = new ByteArrayContent(part) });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(part, Assert.Single(_upstream.Requests).Body);
    }

    [Fact]
    public async Task A_scope_reserves_before_buffering_and_gives_every_byte_back_when_the_request_ends()
    {
        var budget = new SigningBufferBudget(200_000);
        var injector = new AwsSigV4Injector("execute-api", "eu-west-1", null, AwsSigV4Injector.DefaultMaxBodyBytes, _time);

        // Larger than the whole budget: refused before a byte is read, nothing held.
        using (var scope = new SigningBufferScope(budget))
        {
            var tooLarge = Scoped(new HttpRequestMessage(HttpMethod.Put, Url("/")) { Content = new ByteArrayContent(new byte[200_001]) }, scope);
            var refused = await Assert.ThrowsAsync<SigningBufferRefusedException>(() => injector.ApplyAsync(tooLarge, NewCredential(), CancellationToken.None).AsTask());
            Assert.Equal(SigningBufferRefusedException.BodyTooLarge, refused.Reason);
            Assert.Equal(413, refused.Status);
            Assert.Null(tooLarge.Headers.Authorization);
            Assert.Equal(0, budget.Held);
        }

        // A chunked body held by one request; a second that does not fit beside it is refused as full.
        var body = RandomNumberGenerator.GetBytes(150_000);
        var holder = new SigningBufferScope(budget);
        var signed = Scoped(new HttpRequestMessage(HttpMethod.Put, Url("/held")) { Content = new StreamContent(new NonSeekableStream(body)) }, holder);
        await injector.ApplyAsync(signed, NewCredential(), CancellationToken.None);
        Assert.InRange(budget.Held, (long)body.Length, (long)body.Length + SignedBody.SegmentSize);

        using (var second = new SigningBufferScope(budget))
        {
            var refused = await Assert.ThrowsAsync<SigningBufferRefusedException>(() => injector.ApplyAsync(Scoped(new HttpRequestMessage(HttpMethod.Put, Url("/")) { Content = new ByteArrayContent(new byte[60_000]) }, second), NewCredential(), CancellationToken.None).AsTask());
            Assert.Equal(SigningBufferRefusedException.BufferFull, refused.Reason);
            Assert.Equal(503, refused.Status);
        }

        // The held body is replayed as sent, then the end of its request gives its bytes back.
        var received = await SendAsync(signed);
        Assert.Equal(body, received.Body);
        Assert.Equal("match", await VerifyAsync(received, "execute-api", "eu-west-1"));
        Assert.NotEqual(0, budget.Held);
        holder.Dispose();
        Assert.Equal(0, budget.Held);
    }

    private static HttpRequestMessage Scoped(HttpRequestMessage request, SigningBufferScope scope)
    {
        request.Options.Set(SigningBufferScope.OptionsKey, scope);
        return request;
    }

    private static Action<TestConfig> LimitSigningBuffers(long bytes) =>
        config => config.Set("Limits", new JsonObject { ["SigningBufferBytes"] = bytes });

    private void AssertProblem(HttpResponseMessage response, string problem, HttpStatusCode status, string reason)
    {
        _output.WriteLine((int)response.StatusCode + " " + problem);
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(problem);
        Assert.Equal("urn:secretless-proxy:problem:" + reason, json.RootElement.GetProperty("type").GetString());
        Assert.Equal((int)status, json.RootElement.GetProperty("status").GetInt32());
    }

    /// <summary>One sample from the admin port's <c>/metrics</c>, the series chosen by name and labels.</summary>
    private static async Task<long> MetricAsync(ProxyHarness proxy, string name, params string[] labels)
    {
        var (value, text) = await TryMetricAsync(proxy, name, labels);
        Assert.True(value is not null, "no " + name + " " + string.Join(",", labels) + " in\n" + text);
        return value.Value;
    }

    private static async Task<(long? Value, string Text)> TryMetricAsync(ProxyHarness proxy, string name, params string[] labels)
    {
        using var admin = new HttpClient();
        var text = await admin.GetStringAsync(new Uri(proxy.App.AdminUri, "/metrics"));
        var line = text.Split('\n').SingleOrDefault(l => (l.StartsWith(name + "{", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal)) && labels.All(label => l.Contains(label, StringComparison.Ordinal)));
        return (line is null ? null : (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture), text);
    }

    /// <summary>
    /// Reads the series until it satisfies <paramref name="expected"/> (a release trails the response
    /// by as long as the last send takes, and the exporter may serve a recent scrape), or gives up
    /// after a minute and returns the last value for the assertion to report.
    /// </summary>
    private static async Task<long> WaitForMetricAsync(ProxyHarness proxy, string name, Func<long, bool> expected, params string[] labels)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (true)
        {
            // A series may be missing from one scrape (the exporter serves a cached answer for a moment).
            var (value, _) = await TryMetricAsync(proxy, name, labels);
            if (value is { } v && expected(v))
            {
                return v;
            }

            if (DateTime.UtcNow > deadline)
            {
                return await MetricAsync(proxy, name, labels);
            }

            await Task.Delay(50);
        }
    }
}
