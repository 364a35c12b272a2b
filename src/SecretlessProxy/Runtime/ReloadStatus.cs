namespace SecretlessProxy.Runtime;

/// <summary>The outcome of one reload attempt: applied, unchanged, or rejected with every reason (the last good version keeps serving).</summary>
internal sealed record ReloadStatus(DateTimeOffset At, string Outcome, IReadOnlyList<string> Reasons)
{
    public const string Applied = "applied";
    public const string Unchanged = "unchanged";
    public const string Rejected = "rejected";

    public bool IsRejected => Outcome == Rejected;
}
