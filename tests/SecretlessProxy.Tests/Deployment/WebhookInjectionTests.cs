using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// <c>secretless-proxy webhook</c> against the pods the kustomize overlays render: the same pod with
/// the proxy's parts removed and the annotations added, posted as an AdmissionReview over HTTPS,
/// comes back (after the returned JSON Patch) as the overlay's pod; a pod that has the proxy is
/// left alone.
/// </summary>
public sealed class WebhookInjectionTests : IAsyncLifetime
{
    private WebhookServer _server = null!;

    public static TheoryData<string, string> Overlays() => new()
    {
        { "deploy/kubernetes", "route" },
        { "deploy/kubernetes/overlays/explicit", "explicit" },
        { "deploy/kubernetes/overlays/transparent", "transparent" },
    };

    public async Task InitializeAsync() => _server = await WebhookServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [KubectlTheory]
    [MemberData(nameof(Overlays))]
    public async Task An_annotated_pod_posted_with_curl_becomes_the_overlays_pod(string kustomization, string mode)
    {
        var rendered = await WebhookReviews.RenderedPodAsync(kustomization);
        var stripped = WebhookReviews.StripForInjection(rendered, mode);
        var uid = Guid.NewGuid().ToString();

        var (status, body) = await _server.CurlAsync(WebhookReviews.Review(stripped, uid));

        Assert.Equal(200, status);
        var response = WebhookReviews.Response(body, uid);
        Assert.True((bool)response["allowed"]!);
        var patched = WebhookReviews.Apply(response, stripped);
        WebhookReviews.AssertSamePod(WebhookReviews.Expected(rendered, stripped), patched);
    }

    [KubectlFact]
    public async Task The_comparison_notices_a_field_that_differs_from_the_overlay()
    {
        // The check the tests above rely on, shown to fail when one nested value differs.
        var rendered = await WebhookReviews.RenderedPodAsync("deploy/kubernetes/overlays/transparent");
        var stripped = WebhookReviews.StripForInjection(rendered, "transparent");
        var patched = WebhookReviews.Apply(WebhookReviews.Response((await _server.CurlAsync(WebhookReviews.Review(stripped, "check"))).Body, "check"), stripped);
        var expected = WebhookReviews.Expected(rendered, stripped);
        WebhookReviews.AssertSamePod(expected, patched);

        var proxy = patched["spec"]!["initContainers"]!.AsArray().Single(c => (string?)c!["name"] == "secretless-proxy")!;
        proxy["livenessProbe"]!["timeoutSeconds"] = 3;

        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => WebhookReviews.AssertSamePod(expected, patched));
    }

    [KubectlTheory]
    [MemberData(nameof(Overlays))]
    public async Task Posting_the_injected_pod_again_changes_nothing(string kustomization, string mode)
    {
        var rendered = await WebhookReviews.RenderedPodAsync(kustomization);
        var stripped = WebhookReviews.StripForInjection(rendered, mode);
        var first = WebhookReviews.Response((await _server.CurlAsync(WebhookReviews.Review(stripped, "first"))).Body, "first");
        var patched = WebhookReviews.Apply(first, stripped);

        var (status, body) = await _server.CurlAsync(WebhookReviews.Review(patched, "second"));

        Assert.Equal(200, status);
        var again = WebhookReviews.Response(body, "second");
        Assert.True((bool)again["allowed"]!);
        Assert.Null(again["patch"]);
        Assert.Null(again["patchType"]);
    }

    [KubectlTheory]
    [MemberData(nameof(Overlays))]
    public async Task The_overlays_own_pod_is_left_alone_even_when_annotated(string kustomization, string mode)
    {
        // Rendered with the proxy already (kubectl apply -k), plus the annotations: the proxy's
        // containers show it has the proxy, so nothing is added twice.
        var rendered = await WebhookReviews.RenderedPodAsync(kustomization);
        var annotated = WebhookReviews.StripForInjection(rendered, mode);
        annotated["spec"] = rendered["spec"]!.DeepClone();

        var (status, body) = await _server.CurlAsync(WebhookReviews.Review(annotated, "overlay"));

        Assert.Equal(200, status);
        var response = WebhookReviews.Response(body, "overlay");
        Assert.True((bool)response["allowed"]!);
        Assert.Null(response["patch"]);
    }

    [Fact]
    public async Task A_pod_built_with_KubernetesClient_models_gets_the_sidecar_ahead_of_its_own_init_containers()
    {
        var pod = new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = "batch",
                NamespaceProperty = WebhookReviews.Namespace,
                Annotations = new Dictionary<string, string>
                {
                    ["secretless-proxy.io/inject"] = "transparent",
                    ["secretless-proxy.io/config"] = "batch-proxy",
                    ["secretless-proxy.io/port"] = "15006",
                    ["secretless-proxy.io/redirect-ports"] = "443,8443",
                    ["secretless-proxy.io/proxy-volume-mounts"] = "db-secret:/run/secrets/db,api-secret:/run/secrets/api",
                },
            },
            Spec = new V1PodSpec
            {
                InitContainers = [new V1Container { Name = "migrate", Image = "migrate:1" }],
                Containers =
                [
                    new V1Container { Name = "main", Image = "app:1", Env = [new V1EnvVar { Name = "MODE", Value = "batch" }] },
                    new V1Container { Name = "helper", Image = "helper:1", VolumeMounts = [new V1VolumeMount { Name = "data", MountPath = "/data" }] },
                ],
                Volumes =
                [
                    new V1Volume { Name = "data", EmptyDir = new V1EmptyDirVolumeSource() },
                    new V1Volume { Name = "db-secret", Secret = new V1SecretVolumeSource { SecretName = "db" } },
                    new V1Volume { Name = "api-secret", Secret = new V1SecretVolumeSource { SecretName = "api" } },
                ],
            },
        };
        var podJson = WebhookReviews.ToJson(pod);
        using var client = _server.CreateClient();

        using var answer = await client.PostAsync("/mutate", new StringContent(WebhookReviews.Review(podJson, "models"), Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        var response = WebhookReviews.Response(await answer.Content.ReadAsStringAsync(), "models");
        var patched = KubernetesJson.Deserialize<V1Pod>(WebhookReviews.Apply(response, podJson).ToJsonString());
        var spec = patched.Spec;
        Assert.Equal(["secretless-iptables", "secretless-ca-bundle", "secretless-proxy", "migrate"], spec.InitContainers.Select(c => c.Name));
        var iptables = spec.InitContainers[0];
        Assert.Equal(["iptables", "--apply", "--proxy-uid", "65532", "--port", "15006", "--redirect-ports", "443,8443"], iptables.Args);
        Assert.Equal(["NET_ADMIN"], iptables.SecurityContext.Capabilities.Add);
        Assert.Equal(["ALL"], iptables.SecurityContext.Capabilities.Drop);
        var proxy = spec.InitContainers[2];
        Assert.Equal("Always", proxy.RestartPolicy);
        Assert.Equal("/readyz", proxy.StartupProbe.HttpGet.Path);
        Assert.Equal("/healthz", proxy.LivenessProbe.HttpGet.Path);
        Assert.Equal(65532, proxy.SecurityContext.RunAsUser);
        Assert.Contains(proxy.VolumeMounts, m => m.Name == "db-secret" && m.MountPath == "/run/secrets/db" && m.ReadOnlyProperty == true);
        Assert.Contains(proxy.VolumeMounts, m => m.Name == "api-secret" && m.MountPath == "/run/secrets/api" && m.ReadOnlyProperty == true);
        Assert.Equal("batch-proxy", spec.Volumes.Single(v => v.Name == "proxy-config").ConfigMap.Name);
        // Every app container trusts the local CA and mounts its bundle; none gets a Secret.
        Assert.All(spec.Containers, c =>
        {
            Assert.Contains(c.Env, e => e.Name == "SSL_CERT_FILE" && e.Value == "/etc/secretless-proxy-trust/ca-bundle.crt");
            Assert.Contains(c.VolumeMounts, m => m.Name == "proxy-trust" && m.ReadOnlyProperty == true);
            Assert.DoesNotContain(c.VolumeMounts, m => m.Name is "db-secret" or "api-secret" or "proxy-ca" or "proxy-config");
        });
        Assert.Equal("batch", spec.Containers[0].Env[0].Value);
        Assert.Equal("/data", spec.Containers[1].VolumeMounts[0].MountPath);
        Assert.Equal("injected", patched.Metadata.Annotations["secretless-proxy.io/status"]);
    }

    [Fact]
    public async Task A_pod_without_the_annotation_or_with_it_set_to_false_is_admitted_unchanged()
    {
        var plain = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Pod", ["metadata"] = new JsonObject { ["name"] = "plain" }, ["spec"] = new JsonObject { ["containers"] = new JsonArray(new JsonObject { ["name"] = "app", ["image"] = "app:1" }) } };
        var optedOut = (JsonObject)plain.DeepClone();
        optedOut["metadata"]!["annotations"] = new JsonObject { ["secretless-proxy.io/inject"] = "false" };

        foreach (var pod in new[] { plain, optedOut })
        {
            var (status, body) = await _server.CurlAsync(WebhookReviews.Review(pod, "plain"));
            Assert.Equal(200, status);
            var response = WebhookReviews.Response(body, "plain");
            Assert.True((bool)response["allowed"]!);
            Assert.Null(response["patch"]);
        }
    }
}
