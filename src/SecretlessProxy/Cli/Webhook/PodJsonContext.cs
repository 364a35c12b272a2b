using System.Text.Json.Serialization;
using k8s.Models;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// Source-generated metadata for the pod and what the webhook adds to it, and nothing else:
/// KubernetesClient.Aot's own context covers every API type, and using it roots all of them in the
/// Native AOT binary (about 20 MB more, measured). The models' own attributes keep the wire names
/// and the IntOrString and quantity converters.
/// </summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(V1Pod))]
internal sealed partial class PodJsonContext : JsonSerializerContext;
