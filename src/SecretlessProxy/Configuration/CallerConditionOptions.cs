namespace SecretlessProxy.Configuration;

/// <summary>A policy's <c>Caller</c> condition: which local processes may use it. Every list given must match.</summary>
public sealed class CallerConditionOptions
{
    public int[]? Uids { get; set; }

    /// <summary>Absolute executable paths, as <c>/proc/&lt;pid&gt;/exe</c> reports them (symlinks resolved).</summary>
    public string[]? Executables { get; set; }

    /// <summary>Hex SHA-256 of the executable's bytes.</summary>
    public string[]? ExecutableSha256 { get; set; }
}
