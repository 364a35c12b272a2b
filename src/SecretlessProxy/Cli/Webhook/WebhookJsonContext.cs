using System.Text.Json.Serialization;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>Source-generated (Native AOT): the review envelope and the patch.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AdmissionReview))]
[JsonSerializable(typeof(List<JsonPatchOperation>))]
internal sealed partial class WebhookJsonContext : JsonSerializerContext;
