using System.Text.Json.Serialization;

namespace SecretlessProxy.Cli.Webhook;

internal sealed class GroupVersionKind
{
    [JsonPropertyName("group")]
    public string? Group { get; set; }

    [JsonPropertyName("version")]
    public string? Version { get; set; }

    [JsonPropertyName("kind")]
    public string? Kind { get; set; }

    public bool IsPod => string.IsNullOrEmpty(Group) && Version == "v1" && Kind == "Pod";
}
