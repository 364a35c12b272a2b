namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// A SPIFFE ID (<c>spiffe://trust-domain/path</c>), checked as the SPIFFE ID specification
/// (section 2) requires: lowercase trust domain of letters, digits, <c>.</c>, <c>-</c> and
/// <c>_</c>; path segments of letters, digits, <c>.</c>, <c>-</c> and <c>_</c>, none empty, none
/// <c>.</c> or <c>..</c>; no port, user info, query or fragment. Compared byte for byte.
/// </summary>
internal sealed class SpiffeId
{
    private const string Scheme = "spiffe://";
    private const int MaxLength = 2048;

    private SpiffeId(string value, string trustDomain, string path)
    {
        Value = value;
        TrustDomain = trustDomain;
        Path = path;
    }

    /// <summary>The whole ID, <c>spiffe://example.org/ns/payments/sa/api</c>.</summary>
    public string Value { get; }

    /// <summary>The trust domain name, <c>example.org</c>.</summary>
    public string TrustDomain { get; }

    /// <summary>The trust domain's own ID, <c>spiffe://example.org</c>: the key of bundle maps.</summary>
    public string TrustDomainId => Scheme + TrustDomain;

    /// <summary>The path, <c>/ns/payments/sa/api</c>, or empty.</summary>
    public string Path { get; }

    public override string ToString() => Value;

    public static bool TryParse(string? value, out SpiffeId? id, out string error)
    {
        id = null;
        if (string.IsNullOrEmpty(value) || value.Length > MaxLength)
        {
            error = "is empty or longer than " + MaxLength + " characters";
            return false;
        }

        if (!value.StartsWith(Scheme, StringComparison.Ordinal))
        {
            error = "does not start with spiffe://";
            return false;
        }

        var rest = value.AsSpan(Scheme.Length);
        var slash = rest.IndexOf('/');
        var domain = slash < 0 ? rest : rest[..slash];
        var path = slash < 0 ? ReadOnlySpan<char>.Empty : rest[slash..];
        if (domain.IsEmpty)
        {
            error = "has no trust domain";
            return false;
        }

        foreach (var c in domain)
        {
            if (!(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-' or '_'))
            {
                error = "has a trust domain with a character other than lowercase letters, digits, '.', '-' and '_' (no port or user info)";
                return false;
            }
        }

        if (!IsValidPath(path, out error))
        {
            return false;
        }

        id = new SpiffeId(value, domain.ToString(), path.ToString());
        return true;
    }

    /// <summary>A path as the specification allows it: empty, or <c>/segment</c>s of unreserved characters.</summary>
    internal static bool IsValidPath(ReadOnlySpan<char> path, out string error)
    {
        error = string.Empty;
        if (path.IsEmpty)
        {
            return true;
        }

        foreach (var segment in path[1..].ToString().Split('/'))
        {
            if (segment.Length == 0 || segment is "." or "..")
            {
                error = "has an empty, '.' or '..' path segment (or a trailing '/')";
                return false;
            }

            foreach (var c in segment)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
                {
                    error = "has a path character other than letters, digits, '.', '-' and '_' (no query, fragment or percent-encoding)";
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>
    /// The Kubernetes namespace and service account of an ID of the form <c>/ns/NS/sa/SA</c> (the
    /// convention SPIRE's Kubernetes registrations and Istio use), else nulls.
    /// </summary>
    public (string? Namespace, string? ServiceAccount) KubernetesNames()
    {
        var parts = Path.Split('/');
        return parts is ["", "ns", var ns, "sa", var sa] ? (ns, sa) : (null, null);
    }
}
