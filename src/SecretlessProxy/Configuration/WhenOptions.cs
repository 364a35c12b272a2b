namespace SecretlessProxy.Configuration;

/// <summary>A policy's <c>When</c> condition: the days and hours it applies, in one time zone.</summary>
internal sealed class WhenOptions
{
    /// <summary><c>Mon</c> … <c>Sun</c> (or full names).</summary>
    public string[]? Days { get; set; }

    /// <summary><c>HH:mm-HH:mm</c>, start inclusive, end exclusive; may cross midnight (<c>22:00-02:00</c>).</summary>
    public string? Between { get; set; }

    /// <summary>An IANA time zone id; UTC when omitted.</summary>
    public string? TimeZone { get; set; }
}
