using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using k8s.Models;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// Turns a pod that asks for the proxy into the JSON Patch that gives it what the kustomize overlays
/// add (<see cref="SidecarTemplates"/>). Pure: the same pod gives the same patch, and a patched pod
/// gives none.
/// </summary>
internal static class SidecarInjector
{
    public static InjectionOutcome Inject(V1Pod pod, SidecarSettings settings)
    {
        if (IsInjected(pod))
        {
            return InjectionOutcome.AlreadyInjected;
        }

        var spec = pod.Spec;
        var request = InjectionRequest.Parse(pod.Metadata?.Annotations, out var reason);
        if (request is null)
        {
            return reason is null ? InjectionOutcome.NotRequested : InjectionOutcome.Impossible(reason);
        }

        if (spec?.Containers is not { Count: > 0 } containers)
        {
            return InjectionOutcome.Impossible("the pod has no containers");
        }

        if (spec.HostNetwork == true)
        {
            // The pod would share the node's network namespace: the proxy's ports and (transparent)
            // the iptables rules would be the node's, not the pod's.
            return InjectionOutcome.Impossible("the pod uses hostNetwork: the proxy's ports and iptables rules would be the node's");
        }

        if (spec.ShareProcessNamespace == true)
        {
            // Every container would see the proxy's process: one running as the proxy's uid could
            // read /proc/<pid>/root (its Secret mounts, the local CA key) and environment.
            return InjectionOutcome.Impossible("the pod sets shareProcessNamespace: true, which would let its containers reach the proxy's files and memory through /proc");
        }

        // The proxy's uid is the one the iptables rules let out unredirected, and the owner of its
        // files: an app running as it would bypass the proxy (transparent) and could read them.
        const string SameUid = " (the proxy's uid: its traffic skips the proxy and it could read the proxy's files); run the app as another uid";
        if (spec.SecurityContext?.RunAsUser == SidecarSettings.ProxyUid)
        {
            return InjectionOutcome.Impossible("the pod's securityContext sets runAsUser " + SidecarSettings.ProxyUid.ToString(CultureInfo.InvariantCulture) + SameUid);
        }

        var appContainers = (spec.InitContainers ?? []).Concat(containers).ToList();
        if (appContainers.FirstOrDefault(c => c.SecurityContext?.RunAsUser == SidecarSettings.ProxyUid) is { } sameUid)
        {
            return InjectionOutcome.Impossible("container '" + sameUid.Name + "' sets runAsUser " + SidecarSettings.ProxyUid.ToString(CultureInfo.InvariantCulture) + SameUid);
        }

        List<string> warnings = [];
        if (request.Mode == InjectionMode.Transparent && spec.SecurityContext?.RunAsUser is null
            && appContainers.FirstOrDefault(c => c.SecurityContext?.RunAsUser is null) is { } imageUser)
        {
            // The image's USER decides, which the webhook cannot see; distroless and Chainguard
            // "nonroot" images default to 65532.
            warnings.Add("container '" + imageUser.Name + "' sets no runAsUser (nor does the pod), so its image's USER applies: it must not be "
                + SidecarSettings.ProxyUid.ToString(CultureInfo.InvariantCulture) + " (the proxy's uid, e.g. distroless or Chainguard nonroot images), or its traffic bypasses the proxy; set runAsUser");
        }

        var volumes = SidecarTemplates.Volumes(request);
        var volumeNames = (spec.Volumes ?? []).Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
        if (volumes.FirstOrDefault(v => volumeNames.Contains(v.Name)) is { } clash)
        {
            return InjectionOutcome.Impossible("the pod already has a volume named '" + clash.Name + "', which the proxy needs");
        }

        foreach (var (volume, path) in request.ProxyVolumeMounts)
        {
            if (!volumeNames.Contains(volume))
            {
                return InjectionOutcome.Impossible("annotation " + InjectionAnnotations.ProxyVolumeMounts + " names volume '" + volume + "', which the pod does not declare");
            }

            // Over the proxy's own folders it would hide its config, CA or /tmp (or the API server
            // would refuse the duplicate mount with a less helpful message).
            if (SidecarTemplates.ProxyDirectories.FirstOrDefault(d => IsSameOrBelow(path, d) || IsSameOrBelow(d, path)) is { } taken)
            {
                return InjectionOutcome.Impossible("annotation " + InjectionAnnotations.ProxyVolumeMounts + " mounts '" + volume + "' at " + path + ", over the proxy's own " + taken);
            }
        }

        var env = SidecarTemplates.AppEnvironment(request);
        var appMounts = SidecarTemplates.AppVolumeMounts(request);
        foreach (var container in containers)
        {
            if (container.Env?.FirstOrDefault(e => env.Any(i => i.Name == e.Name)) is { } set)
            {
                return InjectionOutcome.Impossible("container '" + container.Name + "' already sets " + set.Name + ", which the proxy's " + request.Mode.ToString().ToLowerInvariant() + " mode sets");
            }

            if (container.VolumeMounts?.FirstOrDefault(m => appMounts.Any(a => a.MountPath == m.MountPath)) is { } mount)
            {
                return InjectionOutcome.Impossible("container '" + container.Name + "' already mounts something at " + mount.MountPath + ", where the proxy's CA bundle goes");
            }
        }

        var patch = new List<JsonPatchOperation>();
        var initContainers = SidecarTemplates.InitContainers(request, settings);
        if (spec.InitContainers is not { Count: > 0 })
        {
            patch.Add(JsonPatchOperation.Add("/spec/initContainers", ToArray(initContainers, PodJsonContext.Default.V1Container)));
        }
        else
        {
            // Ahead of the pod's own init containers, in order: those then run with the proxy up.
            for (var i = 0; i < initContainers.Count; i++)
            {
                patch.Add(JsonPatchOperation.Add("/spec/initContainers/" + i.ToString(CultureInfo.InvariantCulture), ToNode(initContainers[i], PodJsonContext.Default.V1Container)));
            }
        }

        AddAll(patch, "/spec/volumes", spec.Volumes, volumes, PodJsonContext.Default.V1Volume);
        for (var i = 0; i < containers.Count; i++)
        {
            var prefix = "/spec/containers/" + i.ToString(CultureInfo.InvariantCulture);
            AddAll(patch, prefix + "/env", containers[i].Env, env, PodJsonContext.Default.V1EnvVar);
            AddAll(patch, prefix + "/volumeMounts", containers[i].VolumeMounts, appMounts, PodJsonContext.Default.V1VolumeMount);
        }

        if (pod.Metadata?.Annotations is null)
        {
            patch.Add(JsonPatchOperation.Add("/metadata/annotations", new JsonObject { [InjectionAnnotations.Status] = InjectionAnnotations.InjectedStatus }));
        }
        else
        {
            patch.Add(JsonPatchOperation.Add("/metadata/annotations/" + JsonPatchOperation.Escape(InjectionAnnotations.Status), InjectionAnnotations.InjectedStatus));
        }

        return InjectionOutcome.Injected(request.Mode, patch, warnings);
    }

    /// <summary>
    /// The status annotation, or any of the proxy's containers (a pod rendered from the kustomize
    /// overlays, or patched by an earlier invocation whose annotation another webhook dropped).
    /// </summary>
    private static bool IsInjected(V1Pod pod) =>
        pod.Metadata?.Annotations?.TryGetValue(InjectionAnnotations.Status, out var status) == true && status == InjectionAnnotations.InjectedStatus
        || (pod.Spec?.InitContainers ?? []).Concat(pod.Spec?.Containers ?? []).Any(c => SidecarTemplates.ContainerNames.Contains(c.Name));

    /// <summary>Segment by segment: both paths are absolute with no empty, <c>.</c> or <c>..</c> segment (<see cref="InjectionRequest"/> refuses others).</summary>
    private static bool IsSameOrBelow(string path, string directory)
    {
        var pathSegments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var directorySegments = directory.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return pathSegments.Length >= directorySegments.Length
            && directorySegments.SequenceEqual(pathSegments.Take(directorySegments.Length), StringComparer.Ordinal);
    }

    /// <summary>Appends to a list that exists (<c>/-</c>), or creates it whole: RFC 6902 cannot add to an absent array.</summary>
    private static void AddAll<T>(List<JsonPatchOperation> patch, string path, IList<T>? existing, IReadOnlyList<T> items, JsonTypeInfo<T> typeInfo)
    {
        if (items.Count == 0)
        {
            return;
        }

        if (existing is null)
        {
            patch.Add(JsonPatchOperation.Add(path, ToArray(items, typeInfo)));
            return;
        }

        foreach (var item in items)
        {
            patch.Add(JsonPatchOperation.Add(path + "/-", ToNode(item, typeInfo)));
        }
    }

    private static JsonArray ToArray<T>(IReadOnlyList<T> items, JsonTypeInfo<T> typeInfo) => new([.. items.Select(i => ToNode(i, typeInfo))]);

    private static JsonNode? ToNode<T>(T value, JsonTypeInfo<T> typeInfo) => JsonSerializer.SerializeToNode(value, typeInfo);
}
