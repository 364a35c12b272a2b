using System.Text.Json.Serialization;

namespace SecretlessProxy.Governance;

/// <summary>
/// JSON for <see cref="InventoryReport"/>, generated at build time: the proxy publishes Native AOT,
/// where reflection-based serialization is unavailable. Null members (the run-time ones, in a
/// report from configuration alone) are left out.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(InventoryReport))]
internal sealed partial class InventoryJsonContext : JsonSerializerContext
{
}
