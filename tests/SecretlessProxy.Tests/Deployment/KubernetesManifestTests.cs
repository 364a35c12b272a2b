using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using k8s.Models;
using Xunit;
using SecretlessProxy.Configuration;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// The shipped Kubernetes manifests, as rendered by <c>kubectl kustomize</c>: every container
/// locked down, the one exception (the iptables init container) as narrow as it can be, the
/// proxy's uid the one the rules exclude, and no Secret anywhere near the app.
/// </summary>
public sealed class KubernetesManifestTests
{
    private const string Base = "deploy/kubernetes";
    private const string Explicit = "deploy/kubernetes/overlays/explicit";
    private const string Transparent = "deploy/kubernetes/overlays/transparent";
    private const string ProxyName = "secretless-proxy";
    private const string IptablesName = "secretless-iptables";
    private const string CaBundleName = "secretless-ca-bundle";

    public static TheoryData<string> Kustomizations() => new() { Base, Explicit, Transparent };

    [KubectlTheory]
    [MemberData(nameof(Kustomizations))]
    public async Task Renders_a_deployment_with_its_config_map_and_secret(string kustomization)
    {
        var objects = await Kustomize.RenderAsync(kustomization);

        var deployment = Kustomize.SingleDeployment(objects);
        var configVolume = Assert.Single(deployment.Spec.Template.Spec.Volumes, v => v.Name == "proxy-config");
        Assert.Contains(objects.OfType<V1ConfigMap>(), c => c.Metadata.Name == configVolume.ConfigMap.Name);
        var secretVolume = Assert.Single(deployment.Spec.Template.Spec.Volumes, v => v.Secret is not null);
        Assert.Contains(objects.OfType<V1Secret>(), s => s.Metadata.Name == secretVolume.Secret.SecretName);
    }

    [KubectlTheory]
    [MemberData(nameof(Kustomizations))]
    public async Task Every_container_but_the_iptables_one_is_non_root_read_only_unescalated_and_drops_all(string kustomization)
    {
        var deployment = Kustomize.SingleDeployment(await Kustomize.RenderAsync(kustomization));
        var pod = deployment.Spec.Template.Spec;

        Assert.True(pod.SecurityContext.RunAsNonRoot);
        Assert.Equal("RuntimeDefault", pod.SecurityContext.SeccompProfile.Type);
        Assert.False(pod.AutomountServiceAccountToken);
        Assert.NotEqual(true, pod.HostNetwork);
        Assert.NotEqual(true, pod.HostPID);
        var checkedContainers = 0;
        foreach (var container in AllContainers(pod).Where(c => c.Name != IptablesName))
        {
            var sc = container.SecurityContext;
            Assert.True(sc is not null, container.Name + " has no securityContext");
            Assert.True(sc.RunAsNonRoot == true, container.Name + ": runAsNonRoot");
            Assert.True(sc.RunAsUser is > 0, container.Name + ": runAsUser must be a non-zero uid");
            Assert.True(sc.ReadOnlyRootFilesystem == true, container.Name + ": readOnlyRootFilesystem");
            Assert.True(sc.AllowPrivilegeEscalation == false, container.Name + ": allowPrivilegeEscalation");
            Assert.NotEqual(true, sc.Privileged);
            Assert.Equal(["ALL"], sc.Capabilities.Drop);
            Assert.True(sc.Capabilities.Add is null || sc.Capabilities.Add.Count == 0, container.Name + " adds capabilities");
            checkedContainers++;
        }

        Assert.True(checkedContainers >= 2);
    }

    [KubectlTheory]
    [MemberData(nameof(Kustomizations))]
    public async Task Only_the_transparent_overlay_adds_a_capability_and_only_to_its_iptables_init_container(string kustomization)
    {
        var pod = Kustomize.SingleDeployment(await Kustomize.RenderAsync(kustomization)).Spec.Template.Spec;

        var adding = AllContainers(pod).Where(c => c.SecurityContext?.Capabilities?.Add is { Count: > 0 }).Select(c => c.Name).ToArray();

        Assert.Equal(kustomization == Transparent ? [IptablesName] : [], adding);
    }

    [KubectlFact]
    public async Task The_iptables_init_container_is_root_with_NET_ADMIN_only_no_escalation_and_runs_first()
    {
        var pod = Kustomize.SingleDeployment(await Kustomize.RenderAsync(Transparent)).Spec.Template.Spec;

        var iptables = pod.InitContainers[0];
        Assert.Equal(IptablesName, iptables.Name);
        Assert.Null(iptables.RestartPolicy); // runs to completion before the proxy and the app start
        var sc = iptables.SecurityContext;
        // Root in the pod's network namespace is what iptables needs; capabilities keep it to netfilter.
        Assert.Equal(0, sc.RunAsUser);
        Assert.False(sc.RunAsNonRoot);
        Assert.False(sc.Privileged);
        Assert.False(sc.AllowPrivilegeEscalation);
        Assert.True(sc.ReadOnlyRootFilesystem);
        Assert.Equal(["ALL"], sc.Capabilities.Drop);
        Assert.Equal(["NET_ADMIN"], sc.Capabilities.Add);
        Assert.DoesNotContain(iptables.VolumeMounts ?? [], m => pod.Volumes.Single(v => v.Name == m.Name).Secret is not null);
    }

    [KubectlFact]
    public async Task The_proxy_sidecar_runs_as_the_uid_the_iptables_rules_exclude_and_the_app_does_not()
    {
        var objects = await Kustomize.RenderAsync(Transparent);
        var pod = Kustomize.SingleDeployment(objects).Spec.Template.Spec;
        var args = pod.InitContainers.Single(c => c.Name == IptablesName).Args.ToArray();

        Assert.Equal(["iptables", "--apply"], args[..2]);
        var excludedUid = long.Parse(ArgValue(args, "--proxy-uid"), CultureInfo.InvariantCulture);
        var proxy = Proxy(pod);
        // Loop prevention: the proxy's own outbound connections must not be redirected back to it.
        Assert.Equal(excludedUid, proxy.SecurityContext.RunAsUser);
        Assert.All(pod.Containers, app => Assert.NotEqual(excludedUid, app.SecurityContext.RunAsUser));
        Assert.Equal("80,443", ArgValue(args, "--redirect-ports"));

        // The rules redirect to the port the proxy's Transparent listener binds, on loopback.
        var listener = Assert.Single(Config(objects, pod)["SecretlessProxy"]!["Listeners"]!.AsObject(), l => (string?)l.Value!["Mode"] == "Transparent").Value!;
        var url = new Uri((string)listener["Url"]!);
        Assert.Equal("127.0.0.1", url.Host);
        Assert.Equal(ArgValue(args, "--port"), url.Port.ToString(CultureInfo.InvariantCulture));
        Assert.True(pod.InitContainers.IndexOf(pod.InitContainers.Single(c => c.Name == IptablesName)) < pod.InitContainers.IndexOf(proxy));
    }

    [KubectlTheory]
    [MemberData(nameof(Kustomizations))]
    public async Task The_proxy_is_a_native_sidecar_with_probes_on_its_probe_port_as_the_image_uid(string kustomization)
    {
        var objects = await Kustomize.RenderAsync(kustomization);
        var pod = Kustomize.SingleDeployment(objects).Spec.Template.Spec;

        var proxy = Proxy(pod);
        Assert.Equal("Always", proxy.RestartPolicy);
        Assert.Equal(["run", "--config", "/etc/secretless-proxy/appsettings.json"], proxy.Args);
        Assert.Equal("/readyz", proxy.StartupProbe.HttpGet.Path);
        Assert.Equal("/readyz", proxy.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/healthz", proxy.LivenessProbe.HttpGet.Path);
        var probePort = Assert.Single(proxy.Ports, p => p.Name == "probes").ContainerPort;
        Assert.Equal(new Uri((string)Config(objects, pod)["SecretlessProxy"]!["Admin"]!["ProbeUrl"]!).Port, probePort);
        Assert.All([proxy.StartupProbe, proxy.ReadinessProbe, proxy.LivenessProbe], probe => Assert.Equal("probes", probe.HttpGet.Port.Value));
        Assert.Contains(proxy.VolumeMounts, m => m.Name == "proxy-config" && m.MountPath == "/etc/secretless-proxy" && m.ReadOnlyProperty == true);
        // The manifests pin the uid the image was built to run as.
        var user = File.ReadAllLines(Configuration.RepoPaths.Combine("Dockerfile")).Single(l => l.StartsWith("USER ", StringComparison.Ordinal))["USER ".Length..].Split(':');
        Assert.Equal(long.Parse(user[0], CultureInfo.InvariantCulture), proxy.SecurityContext.RunAsUser);
        Assert.Equal(long.Parse(user[1], CultureInfo.InvariantCulture), proxy.SecurityContext.RunAsGroup);
    }

    [KubectlTheory]
    [MemberData(nameof(Kustomizations))]
    public async Task The_admin_endpoint_is_on_loopback_and_only_the_probe_endpoint_faces_the_pod_network(string kustomization)
    {
        var objects = await Kustomize.RenderAsync(kustomization);
        var pod = Kustomize.SingleDeployment(objects).Spec.Template.Spec;
        var admin = Config(objects, pod)["SecretlessProxy"]!["Admin"]!;
        var adminUrl = new Uri((string)admin["Url"]!);
        var probeUrl = new Uri((string)admin["ProbeUrl"]!);

        // /decisions (hosts, paths, caller pid, executable, hash), /credentials, reload and revoke:
        // reachable from this pod's containers only.
        Assert.True(IPAddress.IsLoopback(IPAddress.Parse(adminUrl.Host.Trim('[', ']'))), "Admin:Url " + adminUrl + " is not loopback");
        // The kubelet probes the pod IP.
        Assert.Equal("0.0.0.0", probeUrl.Host);
        Assert.NotEqual(adminUrl.Port, probeUrl.Port);
        // No container declares the admin port, and no probe or port points at it.
        foreach (var container in AllContainers(pod))
        {
            Assert.DoesNotContain(container.Ports ?? [], p => p.ContainerPort == adminUrl.Port);
            foreach (var probe in new[] { container.StartupProbe, container.ReadinessProbe, container.LivenessProbe }.OfType<V1Probe>())
            {
                var port = probe.HttpGet?.Port.Value ?? probe.TcpSocket?.Port.Value;
                Assert.True(port is not null && port != adminUrl.Port.ToString(CultureInfo.InvariantCulture) && port != "admin", container.Name + " probes the admin port");
            }
        }

        // And the rendered config passes validation as the proxy would run it (the new rules included).
        using var tokenClient = new HttpMessageInvoker(new SocketsHttpHandler());
        var directory = Directory.CreateTempSubdirectory("secretless-manifest-");
        try
        {
            var path = Path.Combine(directory.FullName, "appsettings.json");
            await File.WriteAllTextAsync(path, Config(objects, pod).ToJsonString());
            var result = await new ConfigLoader(TimeProvider.System, tokenClient).LoadAsync(path, includeEnvironment: false, checkFiles: false);
            Assert.True(result.IsValid, string.Join("\n", result.Errors));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [KubectlTheory]
    [MemberData(nameof(Kustomizations))]
    public async Task The_app_mounts_no_secret_and_no_ca_key_and_reads_no_secret_into_its_environment(string kustomization)
    {
        var pod = Kustomize.SingleDeployment(await Kustomize.RenderAsync(kustomization)).Spec.Template.Spec;
        var volumes = pod.Volumes.ToDictionary(v => v.Name);

        foreach (var app in pod.Containers)
        {
            foreach (var mount in app.VolumeMounts ?? [])
            {
                var volume = volumes[mount.Name];
                Assert.True(volume.Secret is null, app.Name + " mounts Secret volume " + mount.Name);
                Assert.True(volume.Projected is null, app.Name + " mounts projected volume " + mount.Name);
                Assert.True(volume.Csi is null, app.Name + " mounts CSI volume " + mount.Name);
                Assert.True(mount.Name != "proxy-ca", app.Name + " mounts the local CA's key");
            }

            Assert.DoesNotContain(app.Env ?? [], e => e.ValueFrom?.SecretKeyRef is not null);
            Assert.DoesNotContain(app.EnvFrom ?? [], e => e.SecretRef is not null);
        }

        // And the Secret does exist: the proxy, and only the proxy, mounts it.
        var secretVolume = Assert.Single(pod.Volumes, v => v.Secret is not null).Name;
        Assert.Equal([ProxyName], AllContainers(pod).Where(c => (c.VolumeMounts ?? []).Any(m => m.Name == secretVolume)).Select(c => c.Name));
        Assert.True(Proxy(pod).VolumeMounts.Single(m => m.Name == secretVolume).ReadOnlyProperty);
    }

    [KubectlFact]
    public async Task The_explicit_overlay_points_the_app_at_the_forward_listener_and_at_a_bundle_holding_the_local_ca()
    {
        var objects = await Kustomize.RenderAsync(Explicit);
        var pod = Kustomize.SingleDeployment(objects).Spec.Template.Spec;
        var config = Config(objects, pod)["SecretlessProxy"]!;
        var forward = Assert.Single(config["Listeners"]!.AsObject(), l => (string?)l.Value!["Mode"] == "Forward").Value!;
        var app = Assert.Single(pod.Containers);
        var env = app.Env.ToDictionary(e => e.Name, e => e.Value);

        var proxyUrl = "http://127.0.0.1:" + new Uri((string)forward["Url"]!).Port;
        Assert.Equal(proxyUrl, env["HTTP_PROXY"]);
        Assert.Equal(proxyUrl, env["HTTPS_PROXY"]);
        Assert.Equal(proxyUrl, env["https_proxy"]);
        Assert.Contains("127.0.0.1", env["NO_PROXY"], StringComparison.Ordinal);
        AssertTrustBundle(objects, pod, env);
    }

    [KubectlFact]
    public async Task The_transparent_overlay_leaves_the_app_without_proxy_settings()
    {
        var objects = await Kustomize.RenderAsync(Transparent);
        var pod = Kustomize.SingleDeployment(objects).Spec.Template.Spec;
        var app = Assert.Single(pod.Containers);
        var env = app.Env.ToDictionary(e => e.Name, e => e.Value);

        Assert.DoesNotContain(env.Keys, k => k.EndsWith("_PROXY", StringComparison.OrdinalIgnoreCase));
        AssertTrustBundle(objects, pod, env);
    }

    [KubectlTheory]
    [MemberData(nameof(Kustomizations))]
    public async Task The_proxy_drain_fits_in_the_grace_period_and_the_app_has_a_pre_stop_hook(string kustomization)
    {
        var objects = await Kustomize.RenderAsync(kustomization);
        var pod = Kustomize.SingleDeployment(objects).Spec.Template.Spec;

        var drain = Config(objects, pod)["SecretlessProxy"]!["Shutdown"]?["DrainTimeout"] is { } value
            ? TimeSpan.Parse((string)value!, CultureInfo.InvariantCulture)
            : ShutdownOptions.DefaultDrainTimeout;
        var grace = TimeSpan.FromSeconds(pod.TerminationGracePeriodSeconds ?? 30);
        // The kubelet stops the app first and the sidecar after it, all within the one grace period.
        var appPreStop = TimeSpan.FromSeconds(long.Parse(Assert.Single(pod.Containers).Lifecycle.PreStop.Exec.Command.Last(), CultureInfo.InvariantCulture));
        Assert.True(appPreStop + drain < grace, "app preStop " + appPreStop + " + proxy drain " + drain + " must fit in terminationGracePeriodSeconds " + grace);
    }

    private static void AssertTrustBundle(IReadOnlyList<object> objects, V1PodSpec pod, Dictionary<string, string> env)
    {
        var app = Assert.Single(pod.Containers);
        var trustMount = Assert.Single(app.VolumeMounts, m => m.Name == "proxy-trust");
        Assert.True(trustMount.ReadOnlyProperty);
        Assert.NotNull(pod.Volumes.Single(v => v.Name == "proxy-trust").EmptyDir);
        Assert.Equal(trustMount.MountPath + "/ca-bundle.crt", env["SSL_CERT_FILE"]);
        Assert.Equal(trustMount.MountPath + "/ca-bundle.crt", env["CURL_CA_BUNDLE"]);
        Assert.Equal(trustMount.MountPath + "/ca.crt", env["NODE_EXTRA_CA_CERTS"]);

        // The bundle writer exports the CA the proxy uses (its key stays on the proxy's own volume),
        // and runs before the proxy and the app.
        var localCaDirectory = (string)Config(objects, pod)["SecretlessProxy"]!["LocalCa"]!["Directory"]!;
        var writer = pod.InitContainers.Single(c => c.Name == CaBundleName);
        Assert.Contains(writer.VolumeMounts, m => m.Name == "proxy-ca" && m.MountPath == localCaDirectory);
        Assert.Contains(Proxy(pod).VolumeMounts, m => m.Name == "proxy-ca" && m.MountPath == localCaDirectory);
        Assert.Contains("ca export --config /etc/secretless-proxy/appsettings.json", string.Join(" ", writer.Args), StringComparison.Ordinal);
        Assert.True(pod.InitContainers.IndexOf(writer) < pod.InitContainers.IndexOf(Proxy(pod)));
    }

    private static IEnumerable<V1Container> AllContainers(V1PodSpec pod) => (pod.InitContainers ?? []).Concat(pod.Containers);

    private static V1Container Proxy(V1PodSpec pod) => Assert.Single(pod.InitContainers, c => c.Name == ProxyName);

    private static JsonNode Config(IReadOnlyList<object> objects, V1PodSpec pod)
    {
        var name = pod.Volumes.Single(v => v.Name == "proxy-config").ConfigMap.Name;
        return JsonNode.Parse(objects.OfType<V1ConfigMap>().Single(c => c.Metadata.Name == name).Data["appsettings.json"])!;
    }

    private static string ArgValue(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        Assert.True(i >= 0 && i + 1 < args.Length, "no value for " + name + " in " + string.Join(" ", args));
        return args[i + 1];
    }
}
