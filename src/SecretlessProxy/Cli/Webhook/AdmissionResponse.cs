using System.Text.Json.Serialization;

namespace SecretlessProxy.Cli.Webhook;

internal sealed class AdmissionResponse
{
    public const string JsonPatchType = "JSONPatch";

    /// <summary>The request's uid, echoed: the API server matches the answer by it.</summary>
    [JsonPropertyName("uid")]
    public string Uid { get; set; } = string.Empty;

    [JsonPropertyName("allowed")]
    public bool Allowed { get; set; }

    [JsonPropertyName("patchType")]
    public string? PatchType { get; set; }

    /// <summary>The RFC 6902 patch as UTF-8 JSON; System.Text.Json writes a byte array as base64, as the API wants it.</summary>
    [JsonPropertyName("patch")]
    public byte[]? Patch { get; set; }

    [JsonPropertyName("status")]
    public AdmissionStatus? Status { get; set; }

    /// <summary>Shown by kubectl and recorded in the audit log; used for a pod admitted without the proxy.</summary>
    [JsonPropertyName("warnings")]
    public IList<string>? Warnings { get; set; }
}
