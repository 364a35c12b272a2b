using System.Text.Json;
using System.Text.Json.Serialization;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>The fields of an admission request the webhook reads; the rest (userInfo, options, oldObject) are ignored.</summary>
internal sealed class AdmissionRequest
{
    [JsonPropertyName("uid")]
    public string? Uid { get; set; }

    [JsonPropertyName("kind")]
    public GroupVersionKind? Kind { get; set; }

    [JsonPropertyName("subResource")]
    public string? SubResource { get; set; }

    [JsonPropertyName("namespace")]
    public string? Namespace { get; set; }

    [JsonPropertyName("name")]
    public string? Name { get; set; }

    [JsonPropertyName("operation")]
    public string? Operation { get; set; }

    /// <summary>Kept raw: it is read as a Pod only once the request is known to be about one.</summary>
    [JsonPropertyName("object")]
    public JsonElement? Object { get; set; }
}
