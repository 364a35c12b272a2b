using Microsoft.Extensions.Logging;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>One log entry as the proxy emitted it: every field a sink could write.</summary>
public sealed record CapturedLog(string Category, LogLevel Level, EventId EventId, string Message, IReadOnlyList<KeyValuePair<string, object?>> State, string? Exception)
{
    /// <summary>Everything a log sink could serialise, as one string to scan.</summary>
    public string AllText() =>
        Category + " " + Message + " " + string.Join(" ", State.Select(kv => kv.Key + "=" + kv.Value)) + " " + Exception;
}
