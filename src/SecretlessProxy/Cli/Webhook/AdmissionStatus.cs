using System.Text.Json.Serialization;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>The metav1.Status of a refusal: the API server shows <see cref="Message"/> to whoever created the pod.</summary>
internal sealed class AdmissionStatus
{
    [JsonPropertyName("code")]
    public int Code { get; set; }

    [JsonPropertyName("message")]
    public string? Message { get; set; }
}
