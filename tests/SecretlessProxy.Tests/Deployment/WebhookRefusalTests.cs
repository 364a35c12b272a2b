using System.Text.Json.Nodes;
using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// A pod that asks for the proxy but cannot get it: refused with the reason under
/// <c>--failure-policy Fail</c> (the default), admitted unchanged with the reason as a warning
/// under <c>Ignore</c>. The webhook keeps answering afterwards.
/// </summary>
public sealed class WebhookRefusalTests
{
    public static TheoryData<string, string> ImpossiblePods() => new()
    {
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"sideways","secretless-proxy.io/config":"proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""", "'sideways' is not a mode" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""", "secretless-proxy.io/config is missing" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"Not_A_Name"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""", "is not a ConfigMap name" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"transparent","secretless-proxy.io/config":"proxy","secretless-proxy.io/port":"70000"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""", "'70000' is not a TCP port" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"transparent","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/run/secrets/creds"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""", "names volume 'creds', which the pod does not declare" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/etc/secretless-proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "over the proxy's own /etc/secretless-proxy" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "'creds' is not volume:/absolute/path" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"proxy","secretless-proxy.io/redirect-ports":"443"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""", "applies to the transparent mode only" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"transparent","secretless-proxy.io/config":"proxy"}},"spec":{"hostNetwork":true,"containers":[{"name":"app","image":"app:1"}]}}""", "hostNetwork" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"proxy"}},"spec":{"containers":[{"name":"app","image":"app:1","env":[{"name":"HTTPS_PROXY","value":"http://corp:3128"}]}]}}""", "container 'app' already sets HTTPS_PROXY" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"proxy-config","emptyDir":{}}]}}""", "already has a volume named 'proxy-config'" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"proxy"}},"spec":{"containers":[]}}""", "the pod has no containers" },
        // The proxy's uid (65532) in the app, or a shared process namespace: the app could bypass the
        // proxy or read its files through /proc.
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"transparent","secretless-proxy.io/config":"proxy"}},"spec":{"shareProcessNamespace":true,"containers":[{"name":"app","image":"app:1","securityContext":{"runAsUser":1000}}]}}""", "shareProcessNamespace: true" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"proxy"}},"spec":{"shareProcessNamespace":true,"containers":[{"name":"app","image":"app:1"}]}}""", "shareProcessNamespace: true" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"transparent","secretless-proxy.io/config":"proxy"}},"spec":{"securityContext":{"runAsUser":65532},"containers":[{"name":"app","image":"app:1"}]}}""", "the pod's securityContext sets runAsUser 65532 (the proxy's uid" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy"}},"spec":{"securityContext":{"runAsUser":1000},"containers":[{"name":"web","image":"web:1"},{"name":"app","image":"app:1","securityContext":{"runAsUser":65532}}]}}""", "container 'app' sets runAsUser 65532 (the proxy's uid" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"proxy"}},"spec":{"securityContext":{"runAsUser":1000},"initContainers":[{"name":"migrate","image":"app:1","securityContext":{"runAsUser":65532}}],"containers":[{"name":"app","image":"app:1"}]}}""", "container 'migrate' sets runAsUser 65532 (the proxy's uid" },
        // proxy-volume-mounts paths are compared segment-wise, so only plainly written ones are accepted.
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/etc//secretless-proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "'/etc//secretless-proxy' has an empty, '.' or '..' segment" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/etc/./secretless-proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "'/etc/./secretless-proxy' has an empty, '.' or '..' segment" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/tmp/../etc/secretless-proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "'/tmp/../etc/secretless-proxy' has an empty, '.' or '..' segment" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/run/creds/.."}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "'/run/creds/..' has an empty, '.' or '..' segment" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/etc/secretless-proxy/"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "over the proxy's own /etc/secretless-proxy" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/var/lib"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "over the proxy's own /var/lib/secretless-proxy/ca" },
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""", "over the proxy's own" },
        // Malformed pods: not a Pod's shape, or no object at all.
        { """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"proxy"}},"spec":{"containers":"app"}}""", "not a readable Pod" },
        { "\"a string\"", "missing or not a JSON object" },
        { "null", "missing or not a JSON object" },
    };

    [Theory]
    [MemberData(nameof(ImpossiblePods))]
    public async Task Fail_refuses_the_pod_with_the_reason(string pod, string reason)
    {
        await using var server = await WebhookServer.StartAsync();

        var (status, body) = await server.CurlAsync(WebhookReviews.Review(JsonNode.Parse(pod), "refused"));

        Assert.Equal(200, status);
        var response = WebhookReviews.Response(body, "refused");
        Assert.False((bool)response["allowed"]!);
        Assert.Null(response["patch"]);
        Assert.Equal(400, (int)response["status"]!["code"]!);
        var message = (string)response["status"]!["message"]!;
        Assert.StartsWith("secretless-proxy injection: ", message, StringComparison.Ordinal);
        Assert.Contains(reason, message, StringComparison.Ordinal);
        await AssertStillServesAsync(server);
    }

    [Theory]
    [MemberData(nameof(ImpossiblePods))]
    public async Task Ignore_admits_the_pod_unchanged_with_the_reason_as_a_warning(string pod, string reason)
    {
        await using var server = await WebhookServer.StartAsync("--failure-policy", "Ignore");

        var (status, body) = await server.CurlAsync(WebhookReviews.Review(JsonNode.Parse(pod), "ignored"));

        Assert.Equal(200, status);
        var response = WebhookReviews.Response(body, "ignored");
        Assert.True((bool)response["allowed"]!);
        Assert.Null(response["patch"]);
        Assert.Null(response["status"]);
        var warning = (string)Assert.Single(response["warnings"]!.AsArray())!;
        Assert.Contains(reason, warning, StringComparison.Ordinal);
        Assert.Contains("admitted without the proxy", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_other_than_pod_creation_are_admitted_unchanged()
    {
        await using var server = await WebhookServer.StartAsync();
        var annotated = JsonNode.Parse("""{"metadata":{"annotations":{"secretless-proxy.io/inject":"sideways"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""");

        foreach (var (operation, kind) in new[] { ("UPDATE", "Pod"), ("DELETE", "Pod"), ("CREATE", "ConfigMap") })
        {
            var (status, body) = await server.CurlAsync(WebhookReviews.Review(annotated, "other", operation, kind));
            Assert.Equal(200, status);
            var response = WebhookReviews.Response(body, "other");
            Assert.True((bool)response["allowed"]!);
            Assert.Null(response["patch"]);
        }
    }

    internal static async Task AssertStillServesAsync(WebhookServer server)
    {
        var pod = JsonNode.Parse("""{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""")!.AsObject();
        var (status, body) = await server.CurlAsync(WebhookReviews.Review(pod, "after"));
        Assert.Equal(200, status);
        var patched = WebhookReviews.Apply(WebhookReviews.Response(body, "after"), pod);
        Assert.Equal("secretless-proxy", (string?)patched["spec"]!["initContainers"]![0]!["name"]);
    }
}
