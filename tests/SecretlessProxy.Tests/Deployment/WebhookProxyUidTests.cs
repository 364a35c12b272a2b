using System.Text.Json.Nodes;
using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// The proxy runs as 65532, the uid its iptables rules let out unredirected. A pod that sets that uid
/// is refused (<see cref="WebhookRefusalTests"/>); a transparent pod that sets no uid at all runs as
/// its image's USER, which the webhook cannot see, so it is admitted with a warning saying it must not
/// be 65532 (the default of distroless and Chainguard "nonroot" images).
/// </summary>
public sealed class WebhookProxyUidTests
{
    [Fact]
    public async Task A_transparent_pod_without_runAsUser_is_injected_with_a_warning_about_the_image_user()
    {
        await using var server = await WebhookServer.StartAsync();
        var pod = JsonNode.Parse("""{"metadata":{"annotations":{"secretless-proxy.io/inject":"transparent","secretless-proxy.io/config":"proxy"}},"spec":{"containers":[{"name":"web","image":"web:1","securityContext":{"runAsUser":1000}},{"name":"app","image":"gcr.io/distroless/static:nonroot"}]}}""")!.AsObject();

        var (status, body) = await server.CurlAsync(WebhookReviews.Review(pod, "warned"));

        Assert.Equal(200, status);
        var response = WebhookReviews.Response(body, "warned");
        Assert.True((bool)response["allowed"]!);
        var patched = WebhookReviews.Apply(response, pod);
        Assert.Contains(patched["spec"]!["initContainers"]!.AsArray(), c => (string?)c!["name"] == "secretless-proxy");
        var warning = (string)Assert.Single(response["warnings"]!.AsArray())!;
        Assert.StartsWith("secretless-proxy injection: ", warning, StringComparison.Ordinal);
        Assert.Contains("container 'app' sets no runAsUser", warning, StringComparison.Ordinal);
        Assert.Contains("must not be 65532", warning, StringComparison.Ordinal);
    }

    public static TheoryData<string> UidsThatNeedNoWarning() => new()
    {
        // The pod's uid applies to every container.
        """{"metadata":{"annotations":{"secretless-proxy.io/inject":"transparent","secretless-proxy.io/config":"proxy"}},"spec":{"securityContext":{"runAsUser":1000},"containers":[{"name":"app","image":"app:1"}]}}""",
        // Each container sets its own.
        """{"metadata":{"annotations":{"secretless-proxy.io/inject":"transparent","secretless-proxy.io/config":"proxy"}},"spec":{"initContainers":[{"name":"migrate","image":"app:1","securityContext":{"runAsUser":1001}}],"containers":[{"name":"app","image":"app:1","securityContext":{"runAsUser":1000}}]}}""",
        // Explicit and route modes redirect nothing, so there is no uid rule to slip through.
        """{"metadata":{"annotations":{"secretless-proxy.io/inject":"explicit","secretless-proxy.io/config":"proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""",
        """{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}""",
    };

    [Theory]
    [MemberData(nameof(UidsThatNeedNoWarning))]
    public async Task A_pod_that_sets_its_uid_or_is_not_transparent_is_injected_without_a_warning(string podJson)
    {
        await using var server = await WebhookServer.StartAsync();
        var pod = JsonNode.Parse(podJson)!.AsObject();

        var (status, body) = await server.CurlAsync(WebhookReviews.Review(pod, "quiet"));

        Assert.Equal(200, status);
        var response = WebhookReviews.Response(body, "quiet");
        Assert.True((bool)response["allowed"]!);
        var patched = WebhookReviews.Apply(response, pod);
        Assert.Contains(patched["spec"]!["initContainers"]!.AsArray(), c => (string?)c!["name"] == "secretless-proxy");
        Assert.Null(response["warnings"]);
    }

    [Fact]
    public async Task A_proxy_volume_mount_written_plainly_is_mounted_at_its_path_without_the_trailing_slash()
    {
        await using var server = await WebhookServer.StartAsync();
        var pod = JsonNode.Parse("""{"metadata":{"annotations":{"secretless-proxy.io/inject":"route","secretless-proxy.io/config":"proxy","secretless-proxy.io/proxy-volume-mounts":"creds:/etc/secretless-proxy-creds/"}},"spec":{"containers":[{"name":"app","image":"app:1"}],"volumes":[{"name":"creds","secret":{"secretName":"creds"}}]}}""")!.AsObject();

        var (status, body) = await server.CurlAsync(WebhookReviews.Review(pod, "mounted"));

        Assert.Equal(200, status);
        var patched = WebhookReviews.Apply(WebhookReviews.Response(body, "mounted"), pod);
        var proxy = patched["spec"]!["initContainers"]!.AsArray().Single(c => (string?)c!["name"] == "secretless-proxy")!;
        var mount = proxy["volumeMounts"]!.AsArray().Single(m => (string?)m!["name"] == "creds")!;
        Assert.Equal("/etc/secretless-proxy-creds", (string?)mount["mountPath"]);
    }
}
