using k8s;
using k8s.Models;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>A cert-manager Certificate or Issuer as KubernetesClient's YAML loader reads it (the spec left untyped).</summary>
public sealed class CertManagerObject : IKubernetesObject<V1ObjectMeta>
{
    public string ApiVersion { get; set; } = string.Empty;

    public string Kind { get; set; } = string.Empty;

    public V1ObjectMeta Metadata { get; set; } = new();

    public Dictionary<string, object> Spec { get; set; } = [];
}
