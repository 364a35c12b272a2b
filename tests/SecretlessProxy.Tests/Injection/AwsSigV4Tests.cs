using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Xunit;
using Xunit.Abstractions;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Injection;
using SecretlessProxy.Tests.Identity;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Injection;

/// <summary>
/// SigV4 signing, checked independently of the signing code: a fake upstream records the request it
/// received and botocore (verify_sigv4.py) recomputes the signature from it.
/// </summary>
public sealed partial class AwsSigV4Tests : IAsyncLifetime
{
    private const string AccessKey = "ASIATESTACCESSKEY01";
    private const string SecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY01";
    private const string SessionToken = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN//////////wEaDKEY01";

    private static readonly DateTimeOffset Now = new(2026, 11, 23, 12, 34, 56, TimeSpan.Zero);

    private readonly ITestOutputHelper _output;
    private readonly FakeTimeProvider _time = new(Now);
    private FakeS3 _upstream = null!;

    public AwsSigV4Tests(ITestOutputHelper output)
    {
        _output = output;
    }

    public async Task InitializeAsync() => _upstream = await FakeS3.StartAsync();

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _e2e?.Dispose();
    }

    [Fact]
    public async Task Get_is_signed_with_the_session_keys_and_the_injected_clock()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, Url("/?Action=ListQueues&Version=2012-11-05"));

        var received = await SignAndSendAsync(new AwsSigV4Injector("sqs", "us-east-1", null, AwsSigV4Injector.DefaultMaxBodyBytes, _time), request);

        Assert.Equal("match", await VerifyAsync(received, "sqs", "us-east-1"));
        Assert.Equal("20261123T123456Z", received.Header("X-Amz-Date"));
        Assert.Equal(SessionToken, received.Header("X-Amz-Security-Token"));
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=" + AccessKey + "/20261123/us-east-1/sqs/aws4_request, ", received.Header("Authorization"));
        // A signed payload: the hash of the empty body.
        Assert.Equal(Sha256Hex([]), received.Header("X-Amz-Content-Sha256"));
    }

    [Fact]
    public async Task Put_with_a_body_signs_the_payload_hash_for_a_non_s3_service()
    {
        var body = Encoding.UTF8.GetBytes("{\"orderId\":42,\"note\":\"caf\u00e9\"}");
        var request = new HttpRequestMessage(HttpMethod.Put, Url("/prod/orders/42"))
        {
            Content = new StreamContent(new MemoryStream(body)) { Headers = { { "Content-Type", "application/json; charset=utf-8" } } },
        };

        var received = await SignAndSendAsync(new AwsSigV4Injector("execute-api", "eu-west-1", null, 1024, _time), request);

        Assert.Equal("match", await VerifyAsync(received, "execute-api", "eu-west-1"));
        Assert.Equal(body, received.Body);
        Assert.Equal(Sha256Hex(body), received.Header("X-Amz-Content-Sha256"));
        Assert.Equal(body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), received.Header("Content-Length"));
        Assert.Contains("content-type", received.SignedHeaders());
    }

    [Fact]
    public async Task Query_strings_that_need_encoding_are_canonicalized_on_the_wire_and_signed()
    {
        // Raw spaces, '+', '/', unicode, '=' inside a value, repeated keys out of order, a flag, '~'.
        var request = new HttpRequestMessage(HttpMethod.Get, Url("/items/a-b_c.d~e?q=a b&plus=1+2&slash=/x/y&uni=\u00e9t\u00e9 \u2603&k=2&k=1&eq=x=y&flag&tilde=~ok&pct=%2B%20"));

        var received = await SignAndSendAsync(new AwsSigV4Injector("execute-api", "eu-west-1", null, 1024, _time), request);

        Assert.Equal("match", await VerifyAsync(received, "execute-api", "eu-west-1"));
        // '+' is a space in a query (as the services and botocore read it); everything outside RFC 3986's
        // unreserved set is percent-encoded as UTF-8, order kept (the canonical request sorts).
        Assert.Equal("/items/a-b_c.d~e?q=a%20b&plus=1%202&slash=%2Fx%2Fy&uni=%C3%A9t%C3%A9%20%E2%98%83&k=2&k=1&eq=x%3Dy&flag&tilde=~ok&pct=%2B%20", received.RawTarget);
    }

    [Fact]
    public async Task S3_uses_UNSIGNED_PAYLOAD_and_streams_a_body_larger_than_the_limit()
    {
        var body = RandomNumberGenerator.GetBytes(256 * 1024);
        var request = new HttpRequestMessage(HttpMethod.Put, Url("/b/big%2Bobject.bin"))
        {
            // Unknown length, read once: nothing buffers it.
            Content = new StreamContent(new NonSeekableStream(body)),
        };

        var received = await SignAndSendAsync(new AwsSigV4Injector("s3", "eu-west-1", null, 1024, _time), request);

        Assert.Equal("match", await VerifyAsync(received, "s3", "eu-west-1"));
        Assert.Equal("UNSIGNED-PAYLOAD", received.Header("X-Amz-Content-Sha256"));
        Assert.Contains("x-amz-content-sha256", received.SignedHeaders());
        Assert.Equal(body, received.Body);
    }

    [Fact]
    public async Task The_apps_own_signature_headers_are_replaced_and_trace_headers_are_not_signed()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, Url("/b?list-type=2"));
        request.Headers.TryAddWithoutValidation("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAAPPKEY/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00");
        request.Headers.TryAddWithoutValidation("X-Amz-Date", "20200101T000000Z");
        request.Headers.TryAddWithoutValidation("X-Amz-Security-Token", "app-token");
        request.Headers.TryAddWithoutValidation("X-Amz-Content-Sha256", "app-hash");
        request.Headers.TryAddWithoutValidation("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        request.Headers.TryAddWithoutValidation("x-amz-meta-owner", "orders");
        request.Headers.TryAddWithoutValidation("x-amz-meta-tags", ["a", "b"]);
        var injector = new AwsSigV4Injector("s3", "eu-west-1", null, AwsSigV4Injector.DefaultMaxBodyBytes, _time);

        // The transport's diagnostics replace traceparent and add tracestate/baggage after signing.
        var received = await SignAndSendAsync(injector, request, afterSigning: r =>
        {
            r.Headers.Remove("traceparent");
            r.Headers.TryAddWithoutValidation("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
            r.Headers.TryAddWithoutValidation("tracestate", "vendor=1");
            r.Headers.TryAddWithoutValidation("baggage", "tenant=a");
        });

        Assert.Equal("match", await VerifyAsync(received, "s3", "eu-west-1"));
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=" + AccessKey + "/", received.Header("Authorization"));
        Assert.Equal("20261123T123456Z", received.Header("X-Amz-Date"));
        Assert.Equal(SessionToken, received.Header("X-Amz-Security-Token"));
        Assert.Equal("UNSIGNED-PAYLOAD", received.Header("X-Amz-Content-Sha256"));
        Assert.Single(received.Headers, h => h.Key.Equals("Authorization", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(
            ["host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-owner", "x-amz-meta-tags", "x-amz-security-token"],
            received.SignedHeaders());
        Assert.Equal("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", received.Header("traceparent"));
    }

    [Fact]
    public async Task A_declared_length_above_the_limit_is_refused_before_anything_is_sent()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Url("/"))
        {
            Content = new ByteArrayContent(new byte[2048]),
        };
        var injector = new AwsSigV4Injector("sqs", "us-east-1", null, 1024, _time);

        var ex = await Assert.ThrowsAsync<PayloadTooLargeException>(() => injector.ApplyAsync(request, NewCredential(), CancellationToken.None).AsTask());
        Assert.True(AwsSigV4Injector.IsPayloadTooLarge(new HttpRequestException("wrapped", new AggregateException(ex))));
        Assert.Null(request.Headers.Authorization);
    }

    [Fact]
    public async Task A_streamed_body_that_grows_past_the_limit_is_refused()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Url("/"))
        {
            Content = new StreamContent(new NonSeekableStream(new byte[4096])),
        };
        var injector = new AwsSigV4Injector("sqs", "us-east-1", null, 1024, _time);

        await Assert.ThrowsAsync<PayloadTooLargeException>(() => injector.ApplyAsync(request, NewCredential(), CancellationToken.None).AsTask());
        Assert.Null(request.Headers.Authorization);
    }

    [Fact]
    public async Task Keys_without_a_session_token_sign_without_one()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, Url("/"));
        var credential = new Credential(SecretKey, null, Now, Now.AddHours(1), signingKeys: new SigningKeys(AccessKey, SecretKey, null));
        var injector = new AwsSigV4Injector("sqs", "us-east-1", null, 1024, _time);

        await injector.ApplyAsync(request, credential, CancellationToken.None);
        var received = await SendAsync(request);

        Assert.Null(received.Header("X-Amz-Security-Token"));
        Assert.Equal("match", await FakeS3.VerifyAsync(received, AccessKey, SecretKey, null, "sqs", "us-east-1"));
    }

    [Fact]
    public async Task The_verifier_rejects_a_request_changed_after_signing()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, Url("/?Action=ListQueues&QueueNamePrefix=orders"));
        var received = await SignAndSendAsync(new AwsSigV4Injector("sqs", "us-east-1", null, 1024, _time), request);
        Assert.Equal("match", await VerifyAsync(received, "sqs", "us-east-1"));

        var otherQuery = received with { RawTarget = received.RawTarget.Replace("orders", "payments", StringComparison.Ordinal) };
        var otherDate = received with { Headers = received.Headers.Select(h => h.Key.Equals("X-Amz-Date", StringComparison.OrdinalIgnoreCase) ? new KeyValuePair<string, string>(h.Key, "20261123T123457Z") : h).ToArray() };

        Assert.StartsWith("mismatch: signature differs", await VerifyAsync(otherQuery, "sqs", "us-east-1"));
        Assert.StartsWith("mismatch: signature differs", await VerifyAsync(otherDate, "sqs", "us-east-1"));
        Assert.StartsWith("mismatch: signature differs", await FakeS3.VerifyAsync(received, AccessKey, "wrong" + SecretKey, SessionToken, "sqs", "us-east-1"));
    }

    [Theory]
    [InlineData("s3.eu-west-1.amazonaws.com", "s3", "eu-west-1")]
    [InlineData("bucket.s3.eu-west-1.amazonaws.com", "s3", "eu-west-1")]
    [InlineData("my.dotted.bucket.s3.dualstack.ap-southeast-2.amazonaws.com", "s3", "ap-southeast-2")]
    [InlineData("*.s3.eu-central-1.amazonaws.com", "s3", "eu-central-1")]
    [InlineData("s3.amazonaws.com", "s3", "us-east-1")]
    [InlineData("bucket.s3.amazonaws.com", "s3", "us-east-1")]
    [InlineData("s3-eu-west-1.amazonaws.com", "s3", "eu-west-1")]
    [InlineData("sqs.us-east-1.amazonaws.com", "sqs", "us-east-1")]
    [InlineData("sqs-fips.us-gov-west-1.amazonaws.com", "sqs", "us-gov-west-1")]
    [InlineData("abc123.execute-api.us-east-1.amazonaws.com", "execute-api", "us-east-1")]
    [InlineData("email.eu-west-1.amazonaws.com", "ses", "eu-west-1")]
    [InlineData("runtime.sagemaker.us-west-2.amazonaws.com", "sagemaker", "us-west-2")]
    [InlineData("dynamodb.cn-north-1.amazonaws.com.cn", "dynamodb", "cn-north-1")]
    [InlineData("sts.amazonaws.com", "sts", "us-east-1")]
    public void Service_and_region_are_inferred_from_standard_host_names(string host, string service, string region)
    {
        Assert.True(AwsHostNames.TryInfer(host, out var s, out var r));
        Assert.Equal((service, region), (s, r));
    }

    [Theory]
    [InlineData("api.example.com")]
    [InlineData("127.0.0.1")]
    [InlineData("amazonaws.com")]
    [InlineData("*.amazonaws.com")]
    [InlineData("foo.bar.amazonaws.com")]
    public void Non_aws_host_names_are_not_inferred(string host)
    {
        Assert.False(AwsHostNames.TryInfer(host, out _, out _));
    }

    [Fact]
    public async Task Service_and_region_are_inferred_per_request_when_not_configured()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "http://sqs.eu-north-1.amazonaws.com/?Action=ListQueues");
        var injector = new AwsSigV4Injector(null, null, null, 1024, _time);

        await injector.ApplyAsync(request, NewCredential(), CancellationToken.None);

        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=" + AccessKey + "/20261123/eu-north-1/sqs/aws4_request, ", request.Headers.GetValues("Authorization").Single());
    }

    // ---- Through the proxy: AwsWebIdentity keys from a fake STS, a Route listener, the fake S3 upstream.

    // tests/run.sh installs Debian's awscli (CI); only a developer machine may lack it.
    [RequiresFact("/usr/bin/aws")]
    public async Task Awscli_with_no_sign_request_through_the_proxy_gets_a_correctly_signed_call_to_s3()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "s3", ["Region"] = "eu-west-1" });
        var env = AwscliEnvironment();

        var result = await ExternalClient.RunAsync(
            "/usr/bin/aws",
            ["s3api", "list-objects-v2", "--bucket", "b", "--no-sign-request", "--endpoint-url", proxy.Listener("s3").ToString().TrimEnd('/'), "--output", "json"],
            env);

        _output.WriteLine(result.ToString());
        Assert.Equal(0, result.ExitCode);
        using var listing = JsonDocument.Parse(result.Output);
        Assert.Equal("hello.txt", listing.RootElement.GetProperty("Contents")[0].GetProperty("Key").GetString());
        var received = Assert.Single(_upstream.Requests);
        Assert.Equal("GET", received.Method);
        Assert.StartsWith("/b?list-type=2", received.RawTarget);
        var keys = Assert.Single(_e2e!.Sts.IssuedKeys);
        Assert.Equal("match", await FakeS3.VerifyAsync(received, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken, "s3", "eu-west-1"));
        Assert.Equal("UNSIGNED-PAYLOAD", received.Header("X-Amz-Content-Sha256"));
        Assert.Equal(keys.SessionToken, received.Header("X-Amz-Security-Token"));
    }

    [Fact]
    public async Task Through_the_proxy_the_apps_signature_is_replaced_and_trace_headers_stay_unsigned()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "execute-api", ["Region"] = "eu-west-1" });
        var body = Encoding.UTF8.GetBytes("{\"q\":\"a b\"}");
        var request = new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/prod/items?q=a+b&k=2&k=1&u=%C3%A9"))
        {
            Content = new ByteArrayContent(body) { Headers = { { "Content-Type", "application/json" } } },
        };
        request.Headers.TryAddWithoutValidation("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAAPPKEY/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00");
        request.Headers.TryAddWithoutValidation("X-Amz-Date", "20200101T000000Z");
        request.Headers.TryAddWithoutValidation("X-Amz-Security-Token", "app-token");
        request.Headers.TryAddWithoutValidation("X-Amz-Content-Sha256", "app-hash");
        request.Headers.TryAddWithoutValidation("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");

        var (response, _) = await proxy.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = Assert.Single(_upstream.Requests);
        var keys = Assert.Single(_e2e!.Sts.IssuedKeys);
        Assert.Equal("match", await FakeS3.VerifyAsync(received, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken, "execute-api", "eu-west-1"));
        Assert.Equal("/prod/items?q=a%20b&k=2&k=1&u=%C3%A9", received.RawTarget);
        Assert.Equal(body, received.Body);
        Assert.Equal(Sha256Hex(body), received.Header("X-Amz-Content-Sha256"));
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=" + keys.AccessKeyId + "/", received.Header("Authorization"));
        Assert.Equal(keys.SessionToken, received.Header("X-Amz-Security-Token"));
        Assert.NotEqual("20200101T000000Z", received.Header("X-Amz-Date"));
        Assert.Equal(["content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"], received.SignedHeaders());
        // The proxy's own tracing rewrote traceparent (its outgoing span) after signing: still unsigned, still valid.
        Assert.StartsWith("00-0af7651916cd43dd8448eb211c80319c-", received.Header("traceparent"));
        Assert.NotEqual("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", received.Header("traceparent"));
    }

    [Fact]
    public async Task Through_the_proxy_the_signed_host_is_the_upstreams_not_the_one_the_app_names()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "execute-api", ["Region"] = "eu-west-1" });
        var request = new HttpRequestMessage(HttpMethod.Get, proxy.Listener("s3", "/prod/items"));
        request.Headers.Host = "other-tenant.example";

        var (response, _) = await proxy.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = Assert.Single(_upstream.Requests);
        var keys = Assert.Single(_e2e!.Sts.IssuedKeys);
        // botocore recomputes the signature from the Host the upstream received: the route's own.
        Assert.Equal(_upstream.Url.Authority, received.Header("Host"));
        Assert.Contains("host", received.SignedHeaders());
        Assert.Equal("match", await FakeS3.VerifyAsync(received, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken, "execute-api", "eu-west-1"));
    }

    [Fact]
    public async Task A_body_over_MaxBodyBytes_gets_413_problem_json_and_no_upstream_call()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "sqs", ["Region"] = "us-east-1", ["MaxBodyBytes"] = 1024 });

        // Declared length above the limit.
        var (declared, declaredBody) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Post, proxy.Listener("s3", "/"))
        {
            Content = new ByteArrayContent(new byte[4096]),
        });
        // No declared length (chunked): refused once it grows past the limit.
        var (streamed, streamedBody) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Post, proxy.Listener("s3", "/"))
        {
            Content = new StreamContent(new NonSeekableStream(new byte[4096])),
        });

        foreach (var (response, problem) in new[] { (declared, declaredBody), (streamed, streamedBody) })
        {
            _output.WriteLine((int)response.StatusCode + " " + problem);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            using var json = JsonDocument.Parse(problem);
            Assert.Equal("urn:secretless-proxy:problem:payload-too-large", json.RootElement.GetProperty("type").GetString());
            Assert.Equal(413, json.RootElement.GetProperty("status").GetInt32());
        }

        Assert.Empty(_upstream.Requests);

        // A body within the limit still goes through, signed.
        var (ok, _) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Post, proxy.Listener("s3", "/"))
        {
            Content = new StringContent("Action=ListQueues", Encoding.UTF8, "application/x-www-form-urlencoded"),
        });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var keys = Assert.Single(_e2e!.Sts.IssuedKeys);
        Assert.Equal("match", await FakeS3.VerifyAsync(Assert.Single(_upstream.Requests), keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken, "sqs", "us-east-1"));
    }

    // ---- What the signature covers: an allow-list of headers; a copy source only inside PathPrefix.

    [Fact]
    public async Task Only_allow_listed_x_amz_headers_are_signed_and_others_are_not_sent()
    {
        var request = new HttpRequestMessage(HttpMethod.Put, Url("/mybucket/x"))
        {
            Content = new ByteArrayContent([1, 2, 3]) { Headers = { { "Content-Type", "application/octet-stream" } } },
        };
        request.Headers.TryAddWithoutValidation("x-amz-foo", "bar");
        request.Headers.TryAddWithoutValidation("X-Amz-Meta-Owner", "orders");
        request.Headers.TryAddWithoutValidation("x-amz-server-side-encryption", "aws:kms");
        request.Headers.TryAddWithoutValidation("x-amz-storage-class", "STANDARD_IA");
        request.Headers.TryAddWithoutValidation("x-amz-tagging", "team=orders");
        request.Headers.TryAddWithoutValidation("x-amz-checksum-crc32", "VUvJcA==");
        request.Headers.TryAddWithoutValidation("Cache-Control", "no-cache");

        var received = await SignAndSendAsync(new AwsSigV4Injector("s3", "eu-west-1", null, AwsSigV4Injector.DefaultMaxBodyBytes, _time), request);

        Assert.Equal("match", await VerifyAsync(received, "s3", "eu-west-1"));
        Assert.Equal(
            ["content-type", "host", "x-amz-checksum-crc32", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-owner", "x-amz-security-token", "x-amz-server-side-encryption", "x-amz-storage-class", "x-amz-tagging"],
            received.SignedHeaders());
        // Not signed, so not sent: S3 would reject it unsigned, and a lenient server would act on it.
        Assert.Null(received.Header("x-amz-foo"));
        // Outside x-amz-*: sent as the app set it, unsigned.
        Assert.Equal("no-cache", received.Header("Cache-Control"));
    }

    [Fact]
    public async Task A_copy_source_outside_PathPrefix_is_refused_with_403_and_no_upstream_call()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "s3", ["Region"] = "eu-west-1" }, pathPrefix: "/mybucket/");
        var copy = new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/mybucket/x"));
        copy.Headers.TryAddWithoutValidation("x-amz-copy-source", "/otherbucket/secret.txt");

        var (response, problem) = await proxy.SendAsync(copy);

        _output.WriteLine((int)response.StatusCode + " " + problem);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(problem);
        Assert.Equal("urn:secretless-proxy:problem:policy-denied", json.RootElement.GetProperty("type").GetString());
        Assert.Equal(
            "policy 's3' does not allow this request: x-amz-copy-source names '/otherbucket/secret.txt', outside this policy's PathPrefix '/mybucket/'",
            json.RootElement.GetProperty("detail").GetString());
        Assert.Empty(_upstream.Requests);
        // Refused before the credential was even fetched.
        Assert.Empty(_e2e!.Sts.IssuedKeys);

        // Ambiguous spellings, a second source header, the query form and a rename are refused the same way.
        string[][] refused =
        [
            ["x-amz-copy-source", "/mybucket/../otherbucket/secret.txt"],
            ["x-amz-copy-source", "/mybucket/%2e%2e/otherbucket/secret.txt"],
            ["x-amz-copy-source", "mybucket/..%2Fotherbucket/secret.txt"],
            ["x-amz-copy-source", "/mybucket/%252e%252e%252fotherbucket/secret.txt"],
            ["x-amz-copy-source", "/mybucket/..%5Cotherbucket/secret.txt"],
            ["x-amz-copy-source", "/mybucket/a%00b"],
            ["x-amz-copy-source", "/mybucket/a+b"],
            ["x-amz-copy-source", "/mybucket/x?versionId=1&x=2"],
            ["x-amz-copy-source", "arn:aws:s3:eu-west-1:123456789012:accesspoint/ap/object/mybucket/x"],
            ["x-amz-rename-source", "/otherbucket/secret.txt"],
        ];
        foreach (var (name, value) in refused.Select(r => (r[0], r[1])))
        {
            var request = new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/mybucket/x"));
            request.Headers.TryAddWithoutValidation(name, value);
            var (status, body) = await proxy.SendAsync(request);
            _output.WriteLine(name + ": " + value + " -> " + (int)status.StatusCode + " " + body);
            Assert.Equal(HttpStatusCode.Forbidden, status.StatusCode);
        }

        var twice = new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/mybucket/x"));
        twice.Headers.TryAddWithoutValidation("x-amz-copy-source", ["/mybucket/a", "/otherbucket/secret.txt"]);
        Assert.Equal(HttpStatusCode.Forbidden, (await proxy.SendAsync(twice)).Response.StatusCode);
        var query = new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/mybucket/x?X-Amz-Copy-Source=%2Fotherbucket%2Fsecret.txt"));
        Assert.Equal(HttpStatusCode.Forbidden, (await proxy.SendAsync(query)).Response.StatusCode);

        Assert.Empty(_upstream.Requests);
        Assert.Empty(_e2e.Sts.IssuedKeys);

        // The same PUT without a second object goes through, signed.
        var (plain, _) = await proxy.SendAsync(new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/mybucket/x")) { Content = new ByteArrayContent([1]) });
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Single(_upstream.Requests);
    }

    [Fact]
    public async Task A_copy_source_inside_PathPrefix_is_signed_and_botocore_verifies_it()
    {
        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "s3", ["Region"] = "eu-west-1" }, pathPrefix: "/mybucket/");
        var copy = new HttpRequestMessage(HttpMethod.Put, proxy.Listener("s3", "/mybucket/x"));
        copy.Headers.TryAddWithoutValidation("x-amz-copy-source", "/mybucket/other%20file.txt?versionId=3HL4kqtJlcpXroDTDmJ");
        copy.Headers.TryAddWithoutValidation("x-amz-copy-source-if-match", "\"5d41402abc4b2a76b9719d911017c592\"");
        copy.Headers.TryAddWithoutValidation("x-amz-metadata-directive", "COPY");

        var (response, body) = await proxy.SendAsync(copy);

        _output.WriteLine((int)response.StatusCode + " " + body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = Assert.Single(_upstream.Requests);
        var keys = Assert.Single(_e2e!.Sts.IssuedKeys);
        Assert.Equal("match", await FakeS3.VerifyAsync(received, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken, "s3", "eu-west-1"));
        Assert.Equal("/mybucket/other%20file.txt?versionId=3HL4kqtJlcpXroDTDmJ", received.Header("x-amz-copy-source"));
        Assert.Contains("x-amz-copy-source", received.SignedHeaders());
        Assert.Contains("x-amz-copy-source-if-match", received.SignedHeaders());
        Assert.Contains("x-amz-metadata-directive", received.SignedHeaders());
    }

    [Theory]
    // Path style (an IP address, a bare S3 endpoint, or PathStyle): /bucket/key against the prefix.
    [InlineData("127.0.0.1", "/mybucket/", false, "/mybucket/a/b.txt", true)]
    [InlineData("127.0.0.1", "/mybucket/", false, "mybucket/a%2Fb.txt", true)]
    [InlineData("127.0.0.1", "/mybucket/", false, "/mybucket-other/a", false)]
    [InlineData("127.0.0.1", "", false, "/anybucket/a", true)]
    [InlineData("s3.eu-west-1.amazonaws.com", "/mybucket/", false, "/mybucket/a", true)]
    [InlineData("s3.eu-west-1.amazonaws.com", "/mybucket/", false, "/otherbucket/a", false)]
    [InlineData("minio.internal", "/mybucket/", true, "/mybucket/a", true)]
    // A host that does not say where its bucket is: refused unless PathStyle says.
    [InlineData("minio.internal", "/mybucket/", false, "/mybucket/a", false)]
    // Virtual-hosted S3: the host's own bucket only, the key against the (bucket-relative) prefix.
    [InlineData("mybucket.s3.eu-west-1.amazonaws.com", "/data/", false, "/mybucket/data/a", true)]
    [InlineData("mybucket.s3.eu-west-1.amazonaws.com", "", false, "mybucket/anything", true)]
    [InlineData("mybucket.s3.eu-west-1.amazonaws.com", "/data/", false, "/mybucket/other/a", false)]
    [InlineData("mybucket.s3.eu-west-1.amazonaws.com", "", false, "/otherbucket/data/a", false)]
    [InlineData("my.dotted.bucket.s3.dualstack.eu-west-1.amazonaws.com", "", false, "/my.dotted.bucket/a", true)]
    [InlineData("mybucket.s3.eu-west-1.amazonaws.com", "", true, "/otherbucket/a", false)]
    // Ambiguous: refused whatever the prefix.
    [InlineData("127.0.0.1", "", false, "/mybucket/./a", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/%2E/a", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/a%25%32%66b", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/a%C3", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/a%zz", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/a\\b", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/a b", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/a%0Ab", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket", false)]
    [InlineData("127.0.0.1", "", false, "//mybucket/a", false)]
    [InlineData("127.0.0.1", "", false, "/../mybucket/a", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/a?versionId=", false)]
    [InlineData("127.0.0.1", "", false, "/mybucket/a?versionId=1&partNumber=2", false)]
    public void Copy_sources_are_checked_as_the_object_they_name(string host, string prefix, bool pathStyle, string source, bool allowed)
    {
        var reason = AwsSourceCheck.Refuse("x-amz-copy-source", source, host, prefix, pathStyle);

        _output.WriteLine(reason ?? "allowed");
        Assert.Equal(allowed, reason is null);
    }

    [Fact]
    public async Task Awscli_copies_an_object_within_the_prefix_through_the_proxy_and_is_refused_another_bucket()
    {
        Assert.True(File.Exists("/usr/bin/aws"), "/usr/bin/aws (Debian awscli) is missing; tests/run.sh installs it");

        await using var proxy = await StartProxyAsync(new JsonObject { ["Service"] = "s3", ["Region"] = "eu-west-1" }, pathPrefix: "/mybucket/");
        var env = AwscliEnvironment();
        var endpoint = proxy.Listener("s3").ToString().TrimEnd('/');

        var copied = await ExternalClient.RunAsync("/usr/bin/aws", ["s3", "cp", "s3://mybucket/reports/a b.txt", "s3://mybucket/archive/a b.txt", "--no-sign-request", "--endpoint-url", endpoint], env);

        _output.WriteLine(copied.ToString());
        Assert.Equal(0, copied.ExitCode);
        var keys = Assert.Single(_e2e!.Sts.IssuedKeys);
        var copy = Assert.Single(_upstream.Requests, r => r.Header("x-amz-copy-source") is not null);
        Assert.Equal("PUT", copy.Method);
        Assert.Equal("/mybucket/archive/a%20b.txt", copy.RawTarget);
        Assert.Equal("mybucket/reports/a%20b.txt", copy.Header("x-amz-copy-source"));
        Assert.Contains("x-amz-copy-source", copy.SignedHeaders());
        Assert.Equal("match", await FakeS3.VerifyAsync(copy, keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken, "s3", "eu-west-1"));

        _upstream.Requests.Clear();
        var refused = await ExternalClient.RunAsync("/usr/bin/aws", ["s3api", "copy-object", "--copy-source", "otherbucket/secret.txt", "--bucket", "mybucket", "--key", "stolen.txt", "--no-sign-request", "--endpoint-url", endpoint], env);

        _output.WriteLine(refused.ToString());
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("403", refused.Error);
        Assert.Empty(_upstream.Requests);
    }

    // ---- Configuration errors, by key.

    [Fact]
    public async Task AwsSigV4_needs_an_AwsWebIdentity_credential()
    {
        using var config = new TestConfig();
        config.RouteListener("api", "http://127.0.0.1:9")
            .Credential("file", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("token", "t") })
            .Policy("p", new JsonObject { ["Match"] = TestConfig.Match(["127.0.0.1"]), ["Credential"] = "file", ["Inject"] = new JsonObject { ["AwsSigV4"] = new JsonObject { ["Service"] = "s3", ["Region"] = "eu-west-1" } } });

        var errors = await ErrorsAsync(config);

        var error = Assert.Single(errors);
        Assert.Equal("SecretlessProxy:Policies:p:Inject:AwsSigV4", error.Key);
        Assert.Contains("AwsWebIdentity", error.Message);
    }

    [Fact]
    public async Task Bad_service_region_and_payload_settings_are_named_by_key()
    {
        using var config = new TestConfig();
        config.RouteListener("api", "http://127.0.0.1:9")
            .Credential("file", new JsonObject { ["Source"] = "File", ["Path"] = config.SecretFile("token", "t") })
            .Policy("p", new JsonObject
            {
                ["Match"] = TestConfig.Match(["127.0.0.1"]),
                ["Credential"] = "file",
                ["Inject"] = new JsonObject { ["AwsSigV4"] = new JsonObject { ["Service"] = "SQS!", ["Region"] = "Ireland" } },
            })
            .Policy("q", new JsonObject
            {
                ["Match"] = TestConfig.Match(["localhost"]),
                ["Credential"] = "file",
                ["Inject"] = new JsonObject { ["AwsSigV4"] = new JsonObject { ["Service"] = "sqs", ["Region"] = "us-east-1", ["SignPayload"] = false } },
            });

        var keys = (await ErrorsAsync(config)).Select(e => e.Key).ToArray();

        Assert.Contains("SecretlessProxy:Policies:p:Inject:AwsSigV4:Service", keys);
        Assert.Contains("SecretlessProxy:Policies:p:Inject:AwsSigV4:Region", keys);
        Assert.Contains("SecretlessProxy:Policies:q:Inject:AwsSigV4:SignPayload", keys);
    }

    [Fact]
    public async Task Omitted_service_and_region_must_be_inferable_from_every_Match_host()
    {
        using var config = new TestConfig();
        config.RouteListener("api", "http://127.0.0.1:9")
            .Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = config.SecretFile("token.jwt", "x.y.z") })
            .Credential("aws", new JsonObject { ["Source"] = "AwsWebIdentity", ["RoleArn"] = "arn:aws:iam::123456789012:role/exporter", ["Region"] = "eu-west-1" })
            .Policy("aws", new JsonObject
            {
                ["Match"] = TestConfig.Match(["sqs.us-east-1.amazonaws.com", "*.s3.eu-west-1.amazonaws.com", "queue.internal.example"]),
                ["Credential"] = "aws",
                // Not an empty object: the configuration binder reads "AwsSigV4": {} as absent.
                ["Inject"] = new JsonObject { ["AwsSigV4"] = new JsonObject { ["MaxBodyBytes"] = 1048576 } },
            });

        var error = Assert.Single(await ErrorsAsync(config));

        _output.WriteLine(error.Key + ": " + error.Message);
        Assert.Equal("SecretlessProxy:Policies:aws:Inject:AwsSigV4", error.Key);
        Assert.Contains("'queue.internal.example'", error.Message);
    }

    [Fact]
    public async Task PathStyle_on_a_virtual_hosted_S3_name_is_named_by_key()
    {
        using var config = new TestConfig();
        config.RouteListener("api", "http://127.0.0.1:9")
            .Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = config.SecretFile("token.jwt", "x.y.z") })
            .Credential("aws", new JsonObject { ["Source"] = "AwsWebIdentity", ["RoleArn"] = "arn:aws:iam::123456789012:role/exporter", ["Region"] = "eu-west-1" })
            .Policy("minio", new JsonObject
            {
                ["Match"] = TestConfig.Match(["minio.internal"]),
                ["Credential"] = "aws",
                ["Inject"] = new JsonObject { ["AwsSigV4"] = new JsonObject { ["Service"] = "s3", ["Region"] = "eu-west-1", ["PathStyle"] = true } },
            })
            .Policy("aws", new JsonObject
            {
                ["Match"] = TestConfig.Match(["*.s3.eu-west-1.amazonaws.com"]),
                ["Credential"] = "aws",
                ["Inject"] = new JsonObject { ["AwsSigV4"] = new JsonObject { ["PathStyle"] = true } },
            });

        var error = Assert.Single(await ErrorsAsync(config));

        _output.WriteLine(error.Key + ": " + error.Message);
        Assert.Equal("SecretlessProxy:Policies:aws:Inject:AwsSigV4:PathStyle", error.Key);
        Assert.Contains("'*.s3.eu-west-1.amazonaws.com'", error.Message);
    }

    private static async Task<IReadOnlyList<ConfigError>> ErrorsAsync(TestConfig config)
    {
        using var http = new HttpMessageInvoker(new SocketsHttpHandler { UseProxy = false });
        var result = await new ConfigLoader(TimeProvider.System, http, new SecretlessProxy.Identity.WorkloadIdentityAccessor()).LoadAsync(config.Write(), includeEnvironment: false);
        Assert.False(result.IsValid);
        return result.Errors;
    }

    private EndToEnd? _e2e;

    /// <summary>
    /// A proxy whose Route listener "s3" forwards to the fake S3 and signs with keys an
    /// AwsWebIdentity credential gets from a fake STS for the workload's token.
    /// </summary>
    private async Task<ProxyHarness> StartProxyAsync(JsonObject sigV4, string? pathPrefix = null, Action<TestConfig>? configure = null)
    {
        var identity = new TokenFileIdentityHarness();
        var sts = FakeSts.Start(identity.Time);
        var config = new TestConfig();
        _e2e = new EndToEnd(identity, sts, config);
        var key = TokenFileIdentityHarness.RsaKey();
        identity.WriteToken(identity.Sign(key, identity.Claims("https://kubernetes.default.svc", "sts.amazonaws.com", "system:serviceaccount:jobs:exporter")));
        config.RouteListener("s3", _upstream.Url.ToString().TrimEnd('/'))
            .Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = identity.TokenPath })
            .Credential("aws", new JsonObject
            {
                ["Source"] = "AwsWebIdentity",
                ["RoleArn"] = "arn:aws:iam::123456789012:role/exporter",
                ["Region"] = "eu-west-1",
                ["StsUrl"] = sts.Url,
                ["AllowLoopbackSquatting"] = true,
            })
            .Policy("s3", new JsonObject { ["Match"] = TestConfig.Match(["127.0.0.1"], pathPrefix), ["Credential"] = "aws", ["Inject"] = new JsonObject { ["AwsSigV4"] = sigV4 } });
        configure?.Invoke(config);
        var proxy = await ProxyHarness.StartAsync(config.Write(), identity.Time);
        proxy.NeverEmit(() => sts.Secrets);
        return proxy;
    }

    /// <summary>awscli with nothing of its own: no profile, no metadata service, no credentials (the proxy signs).</summary>
    private Dictionary<string, string> AwscliEnvironment() => new()
    {
        ["AWS_EC2_METADATA_DISABLED"] = "true",
        ["AWS_CONFIG_FILE"] = "/dev/null",
        ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null",
        ["AWS_DEFAULT_REGION"] = "eu-west-1",
        ["AWS_PAGER"] = string.Empty,
        ["HOME"] = _e2e!.Config.Directory,
    };

    private sealed record EndToEnd(TokenFileIdentityHarness Identity, FakeSts Sts, TestConfig Config) : IDisposable
    {
        public void Dispose()
        {
            Sts.Dispose();
            Identity.Dispose();
            Config.Dispose();
        }
    }

    private static Credential NewCredential() =>
        new(SecretKey, null, Now, Now.AddHours(1), signingKeys: new SigningKeys(AccessKey, SecretKey, SessionToken));

    private static string Sha256Hex(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    private Uri Url(string pathAndQuery) => new(_upstream.Url, pathAndQuery);

    private async Task<FakeS3.Received> SignAndSendAsync(AwsSigV4Injector injector, HttpRequestMessage request, Action<HttpRequestMessage>? afterSigning = null)
    {
        await injector.ApplyAsync(request, NewCredential(), CancellationToken.None);
        afterSigning?.Invoke(request);
        return await SendAsync(request);
    }

    private async Task<FakeS3.Received> SendAsync(HttpRequestMessage request)
    {
        // No propagation of its own: other tests' tracing in this process would otherwise rewrite the
        // traceparent this test sets (that rewrite is simulated explicitly by afterSigning).
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, ActivityHeadersPropagator = null });
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(_upstream.Requests.TryDequeue(out var received));
        _output.WriteLine(received.Method + " " + received.RawTarget);
        foreach (var (name, value) in received.Headers)
        {
            _output.WriteLine(name + ": " + value);
        }

        return received;
    }

    private Task<string> VerifyAsync(FakeS3.Received received, string service, string region) =>
        FakeS3.VerifyAsync(received, AccessKey, SecretKey, SessionToken, service, region);

    /// <summary>A body that can be read once, front to back, with no length: like a proxied request body.</summary>
    private sealed class NonSeekableStream(byte[] data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(count, data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
