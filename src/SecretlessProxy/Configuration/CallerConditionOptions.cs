namespace SecretlessProxy.Configuration;

/// <summary>A policy's <c>Caller</c> condition: which local processes may use it. Every list given must match.</summary>
internal sealed class CallerConditionOptions
{
    public int[]? Uids { get; set; }

    /// <summary>Absolute executable paths, as <c>/proc/&lt;pid&gt;/exe</c> reports them (symlinks resolved).</summary>
    public string[]? Executables { get; set; }

    /// <summary>Hex SHA-256 of the executable's bytes.</summary>
    public string[]? ExecutableSha256 { get; set; }

    /// <summary>
    /// The acknowledgement that an Executables or ExecutableSha256 condition without Uids needs:
    /// any process of the caller's uid can pass as an allowed executable (hand it its socket, run it
    /// under LD_PRELOAD, ptrace it), so the condition then tells programs apart but is no boundary.
    /// </summary>
    public bool? SameUidCanImpersonate { get; set; }
}
