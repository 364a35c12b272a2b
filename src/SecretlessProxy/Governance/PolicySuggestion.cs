using System.Text.Json.Nodes;

namespace SecretlessProxy.Governance;

/// <summary>What <see cref="PolicySuggester"/> proposes: the policies, how many records they cover, and the traffic it could not write a policy for.</summary>
internal sealed record PolicySuggestion(JsonObject Policies, int Records, IReadOnlyList<string> Skipped);
