namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// Which SPIFFE IDs an upstream may present: exact IDs, and path prefixes that match at a segment
/// boundary (<c>spiffe://example.org/ns/ledger</c> matches <c>.../ns/ledger</c> and
/// <c>.../ns/ledger/sa/api</c>, not <c>.../ns/ledger-admin</c>).
/// </summary>
internal sealed class SpiffeIdMatcher
{
    private readonly HashSet<string> _ids;
    private readonly string[] _prefixes;

    public SpiffeIdMatcher(IEnumerable<string> ids, IEnumerable<string> prefixes)
    {
        _ids = new HashSet<string>(ids, StringComparer.Ordinal);
        _prefixes = prefixes.Select(p => p.TrimEnd('/')).ToArray();
    }

    public bool Matches(SpiffeId id)
    {
        if (_ids.Contains(id.Value))
        {
            return true;
        }

        foreach (var prefix in _prefixes)
        {
            if (id.Value.Length == prefix.Length ? id.Value == prefix : id.Value.StartsWith(prefix + "/", StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>What is allowed, for messages and for comparing two configurations.</summary>
    public string Describe() =>
        string.Join(", ", _ids.Order(StringComparer.Ordinal).Concat(_prefixes.Order(StringComparer.Ordinal).Select(p => p + "/*")));
}
