namespace SecretlessProxy.Policy;

/// <summary>An exact host name, or <c>*.example.com</c> which matches one or more labels below example.com.</summary>
internal sealed class HostPattern
{
    private HostPattern(string text, bool isWildcard, string value)
    {
        Text = text;
        IsWildcard = isWildcard;
        Value = value;
    }

    public string Text { get; }

    public bool IsWildcard { get; }

    /// <summary>The exact host, or for a wildcard the suffix including its leading dot (<c>.example.com</c>).</summary>
    public string Value { get; }

    public static bool TryParse(string? text, out HostPattern? pattern)
    {
        pattern = null;
        if (string.IsNullOrWhiteSpace(text) || text.Trim() != text)
        {
            return false;
        }

        if (text.StartsWith("*.", StringComparison.Ordinal))
        {
            var suffix = text[1..];
            if (suffix.Length < 2 || suffix.Contains('*'))
            {
                return false;
            }

            pattern = new HostPattern(text, isWildcard: true, suffix.ToLowerInvariant());
            return true;
        }

        if (text.Contains('*') || text.Contains('/') || text.Contains(' '))
        {
            return false;
        }

        pattern = new HostPattern(text, isWildcard: false, text.ToLowerInvariant());
        return true;
    }

    public bool Matches(string host)
    {
        // Host names compare case-insensitively (RFC 4343); the suffix check keeps "evil-example.com"
        // out of "*.example.com" because the suffix carries its leading dot.
        if (!IsWildcard)
        {
            return string.Equals(host, Value, StringComparison.OrdinalIgnoreCase);
        }

        return host.Length > Value.Length && host.EndsWith(Value, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>True when some host name could match both patterns.</summary>
    public bool Overlaps(HostPattern other)
    {
        if (!IsWildcard && !other.IsWildcard)
        {
            return Value == other.Value;
        }

        if (IsWildcard && other.IsWildcard)
        {
            return Value.EndsWith(other.Value, StringComparison.Ordinal) || other.Value.EndsWith(Value, StringComparison.Ordinal);
        }

        var exact = IsWildcard ? other : this;
        var wildcard = IsWildcard ? this : other;
        return wildcard.Matches(exact.Value);
    }

    public override string ToString() => Text;
}
