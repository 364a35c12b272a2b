namespace SecretlessProxy.Configuration;

public sealed class MatchOptions
{
    /// <summary>Exact host names or <c>*.example.com</c> wildcards (one or more labels).</summary>
    public string[]? Hosts { get; set; }

    public int[]? Ports { get; set; }

    public string[]? Methods { get; set; }

    public string? PathPrefix { get; set; }
}
