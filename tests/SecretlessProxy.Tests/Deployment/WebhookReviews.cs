using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.JsonPatch.SystemTextJson;
using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// AdmissionReviews as the API server sends them, built from the pods the kustomize overlays render
/// with the proxy's parts taken out again (the pod a user writes), and what comes back: the patch
/// applied with ASP.NET Core's JSON Patch, pods compared after a round trip through KubernetesClient's
/// models (so "64Mi" and 0440 compare as Kubernetes reads them).
/// </summary>
public static class WebhookReviews
{
    public const string Namespace = "shop";

    /// <summary>What the overlays add to the app's pod, listed here on their own (not taken from the webhook's code).</summary>
    private static readonly string[] ProxyInitContainers = ["secretless-proxy", "secretless-ca-bundle", "secretless-iptables"];
    private static readonly string[] ProxyVolumes = ["proxy-config", "proxy-tmp", "proxy-ca", "proxy-trust", "xtables-lock"];
    private static readonly string[] ProxyEnvironment =
    [
        "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
        "SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS",
    ];

    /// <summary>The overlay's pod as the API server would hold it (metadata and spec of the Deployment's template).</summary>
    public static async Task<JsonObject> RenderedPodAsync(string kustomization)
    {
        var deployment = Kustomize.SingleDeployment(await Kustomize.RenderAsync(kustomization));
        var template = deployment.Spec.Template;
        var pod = new V1Pod { ApiVersion = "v1", Kind = "Pod", Metadata = template.Metadata, Spec = template.Spec };
        pod.Metadata.GenerateName = deployment.Metadata.Name + "-7d9f8b6c5-";
        pod.Metadata.NamespaceProperty = Namespace;
        return ToJson(pod);
    }

    /// <summary>
    /// The overlay's pod without what the overlay added, annotated to ask the webhook for it instead:
    /// the mode, the ConfigMap the overlay generated, and the Secret volume mounted in the proxy.
    /// </summary>
    public static JsonObject StripForInjection(JsonObject rendered, string mode)
    {
        var pod = (JsonObject)rendered.DeepClone();
        var spec = pod["spec"]!.AsObject();
        var configMap = spec["volumes"]!.AsArray().Single(v => (string?)v!["name"] == "proxy-config")!["configMap"]!["name"]!.GetValue<string>();
        var proxy = spec["initContainers"]!.AsArray().Single(c => (string?)c!["name"] == "secretless-proxy")!;
        var secretMount = proxy["volumeMounts"]!.AsArray().Single(m => (string?)m!["name"] == "payments-secret")!;

        RemoveWhere(spec, "initContainers", c => ProxyInitContainers.Contains((string?)c["name"]));
        RemoveWhere(spec, "volumes", v => ProxyVolumes.Contains((string?)v["name"]));
        foreach (var container in spec["containers"]!.AsArray())
        {
            RemoveWhere(container!.AsObject(), "env", e => ProxyEnvironment.Contains((string?)e["name"]));
            RemoveWhere(container.AsObject(), "volumeMounts", m => (string?)m["name"] == "proxy-trust");
        }

        var metadata = pod["metadata"]!.AsObject();
        var annotations = metadata["annotations"] as JsonObject ?? [];
        metadata["annotations"] = annotations;
        annotations["secretless-proxy.io/inject"] = mode;
        annotations["secretless-proxy.io/config"] = configMap;
        annotations["secretless-proxy.io/proxy-volume-mounts"] = "payments-secret:" + (string?)secretMount["mountPath"];
        return pod;
    }

    /// <summary>What the webhook's answer should make of <paramref name="stripped"/>: the overlay's pod, with the request's annotations and the status one.</summary>
    public static JsonObject Expected(JsonObject rendered, JsonObject stripped)
    {
        var expected = (JsonObject)rendered.DeepClone();
        var annotations = (JsonObject)stripped["metadata"]!["annotations"]!.DeepClone();
        annotations["secretless-proxy.io/status"] = "injected";
        expected["metadata"]!["annotations"] = annotations;
        return expected;
    }

    public static string Review(JsonNode? pod, string uid, string operation = "CREATE", string kind = "Pod")
    {
        var review = new JsonObject
        {
            ["apiVersion"] = "admission.k8s.io/v1",
            ["kind"] = "AdmissionReview",
            ["request"] = new JsonObject
            {
                ["uid"] = uid,
                ["kind"] = new JsonObject { ["group"] = "", ["version"] = "v1", ["kind"] = kind },
                ["resource"] = new JsonObject { ["group"] = "", ["version"] = "v1", ["resource"] = kind.ToLowerInvariant() + "s" },
                ["requestKind"] = new JsonObject { ["group"] = "", ["version"] = "v1", ["kind"] = kind },
                ["requestResource"] = new JsonObject { ["group"] = "", ["version"] = "v1", ["resource"] = kind.ToLowerInvariant() + "s" },
                ["namespace"] = Namespace,
                ["operation"] = operation,
                ["userInfo"] = new JsonObject { ["username"] = "system:serviceaccount:kube-system:replicaset-controller", ["groups"] = new JsonArray("system:serviceaccounts", "system:authenticated") },
                ["object"] = pod?.DeepClone(),
                ["oldObject"] = null,
                ["dryRun"] = false,
                ["options"] = new JsonObject { ["apiVersion"] = "meta.k8s.io/v1", ["kind"] = "CreateOptions" },
            },
        };
        return review.ToJsonString();
    }

    /// <summary>The response of an answered review, checked to be one: the envelope, and the request's uid echoed.</summary>
    public static JsonObject Response(string body, string uid)
    {
        var review = JsonNode.Parse(body)!.AsObject();
        Assert.Equal("admission.k8s.io/v1", (string?)review["apiVersion"]);
        Assert.Equal("AdmissionReview", (string?)review["kind"]);
        var response = review["response"]!.AsObject();
        Assert.Equal(uid, (string?)response["uid"]);
        return response;
    }

    /// <summary>Applies the response's base64 JSON Patch to a copy of the pod.</summary>
    public static JsonObject Apply(JsonObject response, JsonObject pod)
    {
        Assert.Equal("JSONPatch", (string?)response["patchType"]);
        var patchJson = Convert.FromBase64String((string)response["patch"]!);
        var patch = JsonSerializer.Deserialize<JsonPatchDocument>(patchJson)!;
        Assert.All(patch.Operations, o => Assert.Equal("add", o.op));
        var patched = (JsonObject)pod.DeepClone();
        patch.ApplyTo(patched);
        return patched;
    }

    /// <summary>
    /// The pod as Kubernetes reads it (a round trip through KubernetesClient's V1Pod), volumes in name
    /// order: the overlay lists the Secret volume among the proxy's, the webhook appends after the pod's own.
    /// </summary>
    public static JsonObject Normalize(JsonObject pod)
    {
        var normalized = ToJson(KubernetesJson.Deserialize<V1Pod>(pod.ToJsonString()));
        if (normalized["spec"]?["volumes"] is JsonArray volumes)
        {
            var sorted = volumes.Select(v => v!.DeepClone()).OrderBy(v => (string?)v["name"], StringComparer.Ordinal).ToArray();
            normalized["spec"]!["volumes"] = new JsonArray(sorted);
        }

        return normalized;
    }

    /// <summary>Asserts two pods are the same, showing both when they are not.</summary>
    public static void AssertSamePod(JsonObject expected, JsonObject actual)
    {
        var e = Normalize(expected);
        var a = Normalize(actual);
        var options = new JsonSerializerOptions { WriteIndented = true };
        Assert.True(JsonNode.DeepEquals(e, a), "expected:\n" + e.ToJsonString(options) + "\nactual:\n" + a.ToJsonString(options));
    }

    public static JsonObject ToJson(object value) => JsonNode.Parse(KubernetesJson.Serialize(value))!.AsObject();

    private static void RemoveWhere(JsonObject parent, string property, Func<JsonNode, bool> remove)
    {
        if (parent[property] is not JsonArray array)
        {
            return;
        }

        foreach (var item in array.Where(i => remove(i!)).ToArray())
        {
            array.Remove(item);
        }

        if (array.Count == 0)
        {
            parent.Remove(property);
        }
    }
}
