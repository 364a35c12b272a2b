using System.Net;
using System.Text;
using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// Bodies that are not an AdmissionReview the webhook can answer (there is no uid to answer to) get
/// an HTTP error with the reason, and the webhook goes on serving.
/// </summary>
public sealed class WebhookMalformedReviewTests : IAsyncLifetime
{
    private const long Limit = 64 * 1024;
    private WebhookServer _server = null!;

    public async Task InitializeAsync() => _server = await WebhookServer.StartAsync("--max-request-bytes", Limit.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public static TheoryData<string, string> MalformedBodies() => new()
    {
        { "this is not json", "is not an AdmissionReview in JSON" },
        { "", "is not an AdmissionReview in JSON" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":", "is not an AdmissionReview in JSON" },
        { "[1,2,3]", "is not an AdmissionReview in JSON" },
        { "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"app\"}}", "expected kind AdmissionReview" },
        { "{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"x\"}}", "expected kind AdmissionReview, apiVersion admission.k8s.io/v1" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "has no request" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"operation\":\"CREATE\"}}", "has no uid" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":\"CREATE\"}", "is not an AdmissionReview in JSON" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":7}}", "is not an AdmissionReview in JSON" },
    };

    [Theory]
    [MemberData(nameof(MalformedBodies))]
    public async Task A_malformed_review_gets_400_with_the_reason(string body, string reason)
    {
        var (status, text) = await _server.CurlAsync(body);

        Assert.Equal(400, status);
        Assert.StartsWith("secretless-proxy webhook: ", text, StringComparison.Ordinal);
        Assert.Contains(reason, text, StringComparison.Ordinal);
        await WebhookRefusalTests.AssertStillServesAsync(_server);
    }

    [Fact]
    public async Task A_review_over_the_size_limit_gets_413_with_or_without_a_length()
    {
        var huge = WebhookReviews.Review(System.Text.Json.Nodes.JsonNode.Parse("{\"metadata\":{\"annotations\":{\"pad\":\"" + new string('x', (int)Limit) + "\"}}}"), "huge");

        var (status, text) = await _server.CurlAsync(huge);
        Assert.Equal(413, status);
        Assert.Contains("larger than " + Limit + " bytes", text, StringComparison.Ordinal);

        // Chunked: no Content-Length to refuse up front, so the limit applies while reading.
        using var client = _server.CreateClient();
        using var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(huge)));
        content.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mutate") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var answer = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, answer.StatusCode);
        Assert.Contains("larger than " + Limit + " bytes", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await WebhookRefusalTests.AssertStillServesAsync(_server);
    }

    [Fact]
    public async Task Only_POST_mutate_and_GET_healthz_are_served()
    {
        using var client = _server.CreateClient();

        Assert.Equal("ok\n", await client.GetStringAsync("/healthz"));
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/")).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await client.GetAsync("/mutate")).StatusCode);
    }
}
