using System.Text.Json.Serialization;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// The admission.k8s.io/v1 AdmissionReview envelope (KubernetesClient has the objects it carries,
/// not the envelope): a request in, the same envelope with a response out.
/// </summary>
internal sealed class AdmissionReview
{
    public const string Version = "admission.k8s.io/v1";
    public const string KindName = "AdmissionReview";

    [JsonPropertyName("apiVersion")]
    public string? ApiVersion { get; set; }

    [JsonPropertyName("kind")]
    public string? Kind { get; set; }

    [JsonPropertyName("request")]
    public AdmissionRequest? Request { get; set; }

    [JsonPropertyName("response")]
    public AdmissionResponse? Response { get; set; }
}
