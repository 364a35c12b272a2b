using System.Globalization;
using k8s.Models;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// The containers, volumes and environment the kustomize manifests add (deploy/kubernetes/base,
/// components/local-ca, overlays/explicit and overlays/transparent), built for one pod. The
/// deployment tests compare an injected pod with the overlays' rendering, so a change to either
/// side shows up there.
/// </summary>
internal static class SidecarTemplates
{
    public const string ProxyContainer = "secretless-proxy";
    public const string CaBundleContainer = "secretless-ca-bundle";
    public const string IptablesContainer = "secretless-iptables";

    public const string ConfigVolume = "proxy-config";
    public const string TmpVolume = "proxy-tmp";
    public const string CaVolume = "proxy-ca";
    public const string TrustVolume = "proxy-trust";
    public const string XtablesLockVolume = "xtables-lock";

    public const string ConfigDirectory = "/etc/secretless-proxy";
    public const string CaDirectory = "/var/lib/secretless-proxy/ca";
    public const string TrustDirectory = "/etc/secretless-proxy-trust";
    private const string TrustWriteDirectory = "/var/run/secretless-proxy/trust";
    private const string ConfigFile = ConfigDirectory + "/appsettings.json";

    /// <summary>The folders the proxy container mounts of its own; the pod's volumes go elsewhere.</summary>
    public static IReadOnlyList<string> ProxyDirectories { get; } = [ConfigDirectory, CaDirectory, "/tmp"];

    /// <summary>The names the injected parts take in a pod; one already in use means the pod cannot take them.</summary>
    public static IReadOnlyList<string> ContainerNames { get; } = [ProxyContainer, CaBundleContainer, IptablesContainer];

    /// <summary>Init containers in the order they run: iptables rules first, then the trust bundle, then the proxy.</summary>
    public static IReadOnlyList<V1Container> InitContainers(InjectionRequest request, SidecarSettings settings)
    {
        var containers = new List<V1Container>();
        if (request.Mode == InjectionMode.Transparent)
        {
            containers.Add(Iptables(request, settings));
        }

        if (request.Mode != InjectionMode.Route)
        {
            containers.Add(CaBundle(settings));
        }

        containers.Add(Proxy(request, settings));
        return containers;
    }

    public static IReadOnlyList<V1Volume> Volumes(InjectionRequest request)
    {
        var volumes = new List<V1Volume>
        {
            new() { Name = ConfigVolume, ConfigMap = new V1ConfigMapVolumeSource { Name = request.ConfigMap } },
            MemoryVolume(TmpVolume, "16Mi"),
        };
        if (request.Mode != InjectionMode.Route)
        {
            volumes.Add(MemoryVolume(CaVolume, "1Mi"));
            volumes.Add(MemoryVolume(TrustVolume, "2Mi"));
        }

        if (request.Mode == InjectionMode.Transparent)
        {
            volumes.Add(MemoryVolume(XtablesLockVolume, "1Mi"));
        }

        return volumes;
    }

    /// <summary>What each app container gets: in explicit mode the proxy variables, then (both CA modes) the trust bundle's.</summary>
    public static IReadOnlyList<V1EnvVar> AppEnvironment(InjectionRequest request)
    {
        var env = new List<V1EnvVar>();
        if (request.Mode == InjectionMode.Explicit)
        {
            var proxy = "http://127.0.0.1:" + request.ListenerPort.ToString(CultureInfo.InvariantCulture);
            env.Add(new V1EnvVar { Name = "HTTP_PROXY", Value = proxy });
            env.Add(new V1EnvVar { Name = "HTTPS_PROXY", Value = proxy });
            env.Add(new V1EnvVar { Name = "http_proxy", Value = proxy });
            env.Add(new V1EnvVar { Name = "https_proxy", Value = proxy });
            env.Add(new V1EnvVar { Name = "NO_PROXY", Value = "127.0.0.1,::1,localhost" });
            env.Add(new V1EnvVar { Name = "no_proxy", Value = "127.0.0.1,::1,localhost" });
        }

        if (request.Mode != InjectionMode.Route)
        {
            const string Bundle = TrustDirectory + "/ca-bundle.crt";
            env.Add(new V1EnvVar { Name = "SSL_CERT_FILE", Value = Bundle });
            env.Add(new V1EnvVar { Name = "CURL_CA_BUNDLE", Value = Bundle });
            env.Add(new V1EnvVar { Name = "REQUESTS_CA_BUNDLE", Value = Bundle });
            env.Add(new V1EnvVar { Name = "AWS_CA_BUNDLE", Value = Bundle });
            env.Add(new V1EnvVar { Name = "GIT_SSL_CAINFO", Value = Bundle });
            env.Add(new V1EnvVar { Name = "NODE_EXTRA_CA_CERTS", Value = TrustDirectory + "/ca.crt" });
        }

        return env;
    }

    /// <summary>The CA certificate (never its key) for each app container, read-only.</summary>
    public static IReadOnlyList<V1VolumeMount> AppVolumeMounts(InjectionRequest request) =>
        request.Mode == InjectionMode.Route ? [] : [new V1VolumeMount { Name = TrustVolume, MountPath = TrustDirectory, ReadOnlyProperty = true }];

    private static V1Container Proxy(InjectionRequest request, SidecarSettings settings)
    {
        var mounts = new List<V1VolumeMount>();
        if (request.Mode != InjectionMode.Route)
        {
            mounts.Add(new V1VolumeMount { Name = CaVolume, MountPath = CaDirectory });
        }

        mounts.Add(new V1VolumeMount { Name = ConfigVolume, MountPath = ConfigDirectory, ReadOnlyProperty = true });
        foreach (var (volume, path) in request.ProxyVolumeMounts)
        {
            mounts.Add(new V1VolumeMount { Name = volume, MountPath = path, ReadOnlyProperty = true });
        }

        mounts.Add(new V1VolumeMount { Name = TmpVolume, MountPath = "/tmp" });
        return new V1Container
        {
            Name = ProxyContainer,
            Image = settings.Image,
            ImagePullPolicy = settings.ImagePullPolicy,
            // A native sidecar (Kubernetes 1.29+): starts before the app, must pass its startup probe
            // first, and is stopped only after every app container has exited, so the app's last
            // calls still have a proxy, which then drains for Shutdown:DrainTimeout.
            RestartPolicy = "Always",
            Args = ["run", "--config", ConfigFile],
            Ports = [new V1ContainerPort { Name = "probes", ContainerPort = 9902, Protocol = "TCP" }],
            StartupProbe = Probe("/readyz", periodSeconds: 1, failureThreshold: 30),
            ReadinessProbe = Probe("/readyz", periodSeconds: 5, failureThreshold: 3),
            LivenessProbe = Probe("/healthz", periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 2),
            Resources = Resources("50m", "64Mi", "500m", "256Mi"),
            SecurityContext = NonRoot(),
            VolumeMounts = mounts,
        };
    }

    private static V1Container CaBundle(SidecarSettings settings) => new()
    {
        Name = CaBundleContainer,
        Image = settings.Image,
        ImagePullPolicy = settings.ImagePullPolicy,
        Command = ["/bin/sh", "-c"],
        Args =
        [
            "set -e\n"
            + "/app/secretless-proxy ca export --config " + ConfigFile + " > " + TrustWriteDirectory + "/ca.crt\n"
            + "cat /etc/ssl/certs/ca-certificates.crt " + TrustWriteDirectory + "/ca.crt > " + TrustWriteDirectory + "/ca-bundle.crt\n",
        ],
        Resources = Resources("10m", "32Mi", "200m", "128Mi"),
        SecurityContext = NonRoot(),
        VolumeMounts =
        [
            new V1VolumeMount { Name = ConfigVolume, MountPath = ConfigDirectory, ReadOnlyProperty = true },
            new V1VolumeMount { Name = CaVolume, MountPath = CaDirectory },
            new V1VolumeMount { Name = TrustVolume, MountPath = TrustWriteDirectory },
            new V1VolumeMount { Name = TmpVolume, MountPath = "/tmp" },
        ],
    };

    private static V1Container Iptables(InjectionRequest request, SidecarSettings settings) => new()
    {
        Name = IptablesContainer,
        Image = settings.Image,
        ImagePullPolicy = settings.ImagePullPolicy,
        Args =
        [
            "iptables", "--apply",
            "--proxy-uid", SidecarSettings.ProxyUid.ToString(CultureInfo.InvariantCulture),
            "--port", request.ListenerPort.ToString(CultureInfo.InvariantCulture),
            "--redirect-ports", string.Join(',', request.RedirectPorts.Select(p => p.ToString(CultureInfo.InvariantCulture))),
        ],
        Resources = Resources("10m", "16Mi", "100m", "64Mi"),
        // Root in the pod's network namespace with NET_ADMIN and nothing else: enough for the nf_tables
        // backend (see deploy/kubernetes/README.md for the legacy backend, which also needs NET_RAW).
        SecurityContext = new V1SecurityContext
        {
            RunAsNonRoot = false,
            RunAsUser = 0,
            RunAsGroup = 0,
            Privileged = false,
            ReadOnlyRootFilesystem = true,
            AllowPrivilegeEscalation = false,
            Capabilities = new V1Capabilities { Drop = ["ALL"], Add = ["NET_ADMIN"] },
        },
        // iptables takes its lock at /run/xtables.lock.
        VolumeMounts = [new V1VolumeMount { Name = XtablesLockVolume, MountPath = "/run" }],
    };

    private static V1Probe Probe(string path, int periodSeconds, int failureThreshold, int? timeoutSeconds = null) => new()
    {
        HttpGet = new V1HTTPGetAction { Path = path, Port = (IntOrString)"probes" },
        PeriodSeconds = periodSeconds,
        FailureThreshold = failureThreshold,
        TimeoutSeconds = timeoutSeconds,
    };

    private static V1ResourceRequirements Resources(string cpuRequest, string memoryRequest, string cpuLimit, string memoryLimit) => new()
    {
        Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new(cpuRequest), ["memory"] = new(memoryRequest) },
        Limits = new Dictionary<string, ResourceQuantity> { ["cpu"] = new(cpuLimit), ["memory"] = new(memoryLimit) },
    };

    private static V1SecurityContext NonRoot() => new()
    {
        RunAsNonRoot = true,
        RunAsUser = SidecarSettings.ProxyUid,
        RunAsGroup = SidecarSettings.ProxyUid,
        ReadOnlyRootFilesystem = true,
        AllowPrivilegeEscalation = false,
        Capabilities = new V1Capabilities { Drop = ["ALL"] },
    };

    private static V1Volume MemoryVolume(string name, string sizeLimit) => new()
    {
        Name = name,
        EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity(sizeLimit) },
    };
}
