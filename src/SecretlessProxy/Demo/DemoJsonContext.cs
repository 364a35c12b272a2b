using System.Text.Json.Serialization;

namespace SecretlessProxy.Demo;

[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class DemoJsonContext : JsonSerializerContext
{
}
