using System.Text;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// A listener that opts in to recording query strings on spans gets them with the values of
/// configured parameters (and of every parameter a policy injects) replaced by <c>REDACTED</c>.
/// </summary>
internal sealed class QueryRedactor
{
    public const string Mask = "REDACTED";

    private readonly HashSet<string> _redacted;

    public QueryRedactor(IEnumerable<string> redactedParameters)
    {
        _redacted = new HashSet<string>(redactedParameters, StringComparer.OrdinalIgnoreCase);
    }

    public IReadOnlyCollection<string> RedactedParameters => _redacted;

    /// <summary>Redacts a raw query string (with or without its leading '?').</summary>
    public string Redact(string query)
    {
        var span = query.AsSpan().TrimStart('?');
        var builder = new StringBuilder(query.Length);
        foreach (var range in span.Split('&'))
        {
            var pair = span[range];
            if (builder.Length > 0)
            {
                builder.Append('&');
            }

            var eq = pair.IndexOf('=');
            var rawName = eq < 0 ? pair : pair[..eq];
            var name = Uri.UnescapeDataString(rawName.ToString().Replace('+', ' '));
            if (eq >= 0 && _redacted.Contains(name))
            {
                builder.Append(rawName).Append('=').Append(Mask);
            }
            else
            {
                builder.Append(pair);
            }
        }

        return builder.ToString();
    }
}
