namespace SecretlessProxy.Telemetry;

internal enum AuditSink
{
    None,
    Stdout,
    File,
}

/// <summary>Validated audit settings.</summary>
internal sealed record AuditSettings(AuditSink Sink, string? Path, long MaxFileBytes)
{
    public static readonly AuditSettings Default = new(AuditSink.None, null, 10 * 1024 * 1024);
}
