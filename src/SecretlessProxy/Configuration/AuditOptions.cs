namespace SecretlessProxy.Configuration;

/// <summary>Where the audit trail (one JSON line per decision) is written.</summary>
internal sealed class AuditOptions
{
    /// <summary><c>None</c> (default), <c>Stdout</c> or <c>File</c>.</summary>
    public string? Sink { get; set; }

    /// <summary>File sink: the file written; rotated to <c>Path.1</c> when it exceeds <see cref="MaxFileBytes"/>.</summary>
    public string? Path { get; set; }

    /// <summary>File sink: size at which the file is rotated. Default 10 MiB.</summary>
    public long? MaxFileBytes { get; set; }
}
