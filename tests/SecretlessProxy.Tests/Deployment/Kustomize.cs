using k8s;
using k8s.Models;
using Xunit;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// Renders a kustomization with the real <c>kubectl kustomize</c> and parses the output with
/// KubernetesClient's YAML loader, so tests assert on what <c>kubectl apply -k</c> would apply.
/// </summary>
public static class Kustomize
{
    private static readonly Lazy<bool> KubectlOnPath = new(() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, "kubectl"))));

    public const string SkipReason = "kubectl is not on PATH: the Kubernetes manifests cannot be rendered here (CI has it; tests/run.sh installs it)";

    public static bool Available => KubectlOnPath.Value;

    /// <param name="directory">The kustomization, relative to the repository root (e.g. deploy/kubernetes/overlays/explicit).</param>
    public static async Task<IReadOnlyList<object>> RenderAsync(string directory)
    {
        var result = await ExternalClient.RunAsync("kubectl", ["kustomize", RepoPaths.Combine(directory.Split('/'))]);
        Assert.True(result.ExitCode == 0, "kubectl kustomize " + directory + " failed\n" + result);
        return KubernetesYaml.LoadAllFromString(result.Output);
    }

    public static V1Deployment SingleDeployment(IReadOnlyList<object> objects) => Assert.Single(objects.OfType<V1Deployment>());
}
