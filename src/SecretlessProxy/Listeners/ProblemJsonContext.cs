using System.Text.Json.Serialization;

namespace SecretlessProxy.Listeners;

[JsonSerializable(typeof(string))]
internal sealed partial class ProblemJsonContext : JsonSerializerContext
{
}
