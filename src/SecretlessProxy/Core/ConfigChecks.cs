namespace SecretlessProxy.Core;

/// <summary>The small value checks every configuration section uses, each reporting under the key it is given.</summary>
internal static class ConfigChecks
{
    public static TimeSpan Positive(TimeSpan? value, TimeSpan fallback, string key, List<ConfigError> errors)
    {
        if (value is { } v && v <= TimeSpan.Zero)
        {
            errors.Add(new(key, "must be a positive duration (hh:mm:ss)"));
        }

        return value ?? fallback;
    }

    public static TimeSpan NonNegative(TimeSpan? value, TimeSpan fallback, string key, List<ConfigError> errors)
    {
        if (value is { } v && v < TimeSpan.Zero)
        {
            errors.Add(new(key, "must not be negative"));
        }

        return value ?? fallback;
    }

    /// <summary>
    /// A URL with user info carries a password; error messages show the URL without it, since they
    /// end up in logs and CI output.
    /// </summary>
    public static string WithoutUserInfo(string url)
    {
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        var start = scheme < 0 ? 0 : scheme + 3;
        var end = url.IndexOfAny(['/', '?', '#'], start);
        var authority = end < 0 ? url[start..] : url[start..end];
        var at = authority.LastIndexOf('@');
        return at < 0 ? url : url[..start] + "***@" + url[(start + at + 1)..];
    }
}
