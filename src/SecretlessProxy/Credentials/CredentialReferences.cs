using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// The references between the credentials of one configuration (<see cref="CredentialReference"/>):
/// each is checked against what the named credential yields when it is made, and the whole set for
/// cycles once every credential is compiled (<see cref="CheckCycles"/>), so no fetch can wait on itself.
/// </summary>
internal sealed class CredentialReferences
{
    private readonly Func<string, CredentialShape?> _yields;
    private readonly List<CredentialReference> _references = [];
    private readonly Dictionary<string, ICredentialSource> _sources = new(StringComparer.OrdinalIgnoreCase);

    /// <param name="yields">What each declared credential yields, by name; null for a name no credential has.</param>
    public CredentialReferences(Func<string, CredentialShape?> yields)
    {
        _yields = yields;
    }

    /// <summary>
    /// A reference from credential <paramref name="from"/> (its key <paramref name="key"/>) to
    /// <paramref name="name"/>, which must yield <paramref name="needs"/>; null, with the problem in
    /// <paramref name="errors"/>, when it does not.
    /// </summary>
    /// <param name="what">What the named credential is for, as a message says it ("the keys that sign the token").</param>
    public CredentialReference? Add(string from, string key, string? name, CredentialShape needs, string what, List<ConfigError> errors)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            errors.Add(new(key, "is required: the credential that holds " + what));
            return null;
        }

        if (string.Equals(name, from, StringComparison.OrdinalIgnoreCase))
        {
            errors.Add(new(key, "names this credential itself"));
            return null;
        }

        if (_yields(name) is not { } shape)
        {
            errors.Add(new(key, "names unknown credential '" + name + "'"));
            return null;
        }

        if (!shape.HasFlag(needs))
        {
            errors.Add(new(key, "credential '" + name + "' does not yield " + what + " (" + needs + ")"));
            return null;
        }

        var reference = new CredentialReference(this, from, key, name);
        _references.Add(reference);
        return reference;
    }

    /// <summary>Records a compiled credential, for the descriptions of those that refer to it.</summary>
    public void Compiled(string name, ICredentialSource source) => _sources[name] = source;

    internal ICredentialSource? SourceOf(string name) => _sources.GetValueOrDefault(name);

    /// <summary>Reports each reference that leads back to the credential holding it, under its key.</summary>
    public void CheckCycles(List<ConfigError> errors)
    {
        var edges = _references.ToLookup(r => r.From, StringComparer.OrdinalIgnoreCase);
        foreach (var reference in _references)
        {
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            var pending = new Stack<string>([reference.Name]);
            while (pending.TryPop(out var next))
            {
                if (string.Equals(next, reference.From, StringComparison.OrdinalIgnoreCase))
                {
                    errors.Add(new(reference.Key, "credential '" + reference.Name + "' leads back to '" + reference.From + "': references between credentials must not form a cycle"));
                    break;
                }

                if (seen.Add(next))
                {
                    foreach (var onward in edges[next])
                    {
                        pending.Push(onward.Name);
                    }
                }
            }
        }
    }
}
