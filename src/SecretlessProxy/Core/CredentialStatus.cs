namespace SecretlessProxy.Core;

/// <summary>What /credentials shows for one credential: its state and timing, never its value.</summary>
internal sealed record CredentialStatus(
    string Name,
    string Source,
    string State,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? LastRefresh,
    string? LastError,
    DateTimeOffset? LastErrorAt);
