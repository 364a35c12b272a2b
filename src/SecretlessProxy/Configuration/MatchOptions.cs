namespace SecretlessProxy.Configuration;

internal sealed class MatchOptions
{
    /// <summary>Exact host names or <c>*.example.com</c> wildcards (one or more labels).</summary>
    public string[]? Hosts { get; set; }

    public int[]? Ports { get; set; }

    public string[]? Methods { get; set; }

    public string? PathPrefix { get; set; }

    /// <summary>
    /// <c>http</c> and/or <c>https</c>. Omitted: https only where the app picks the scheme (Forward,
    /// Transparent); a Route listener's upstream scheme is the operator's.
    /// </summary>
    public string[]? Schemes { get; set; }

    /// <summary>Forward paths with encoded slashes (<c>%2F</c>) byte-exact instead of refusing them (S3 keys, GitLab project paths).</summary>
    public bool? AllowEncodedSlashes { get; set; }
}
