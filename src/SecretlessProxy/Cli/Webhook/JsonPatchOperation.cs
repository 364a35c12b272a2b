using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>One RFC 6902 operation; the webhook only ever adds.</summary>
internal sealed record JsonPatchOperation(
    [property: JsonPropertyName("op")] string Op,
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("value")] JsonNode? Value)
{
    public static JsonPatchOperation Add(string path, JsonNode? value) => new("add", path, value);

    /// <summary>RFC 6901 section 3: '~' and '/' inside a reference token are written ~0 and ~1.</summary>
    public static string Escape(string token) => token.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
}
