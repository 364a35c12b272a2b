using System.Text;
using SecretlessProxy.Core;

namespace SecretlessProxy.Injection;

/// <summary>Puts the secret in one query parameter, replacing every occurrence the app sent.</summary>
internal sealed class QueryInjector : HttpRequestInjector
{
    public QueryInjector(string parameter)
    {
        Parameter = parameter;
    }

    private static readonly UriCreationOptions Verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    public string Parameter { get; }

    public override string Kind => "query";

    public override void Apply(HttpRequestMessage proxyRequest, Credential credential)
    {
        var uri = proxyRequest.RequestUri ?? throw new InvalidOperationException("The outgoing request has no URI.");
        var query = uri.Query.AsSpan();
        if (query.StartsWith("?"))
        {
            query = query[1..];
        }

        var builder = new StringBuilder(uri.Query.Length + Parameter.Length + credential.Secret.Length + 2);
        foreach (var range in query.Split('&'))
        {
            var pair = query[range];
            if (pair.IsEmpty)
            {
                continue;
            }

            var eq = pair.IndexOf('=');
            var name = Uri.UnescapeDataString((eq < 0 ? pair : pair[..eq]).ToString().Replace('+', ' '));
            if (string.Equals(name, Parameter, StringComparison.Ordinal))
            {
                continue;
            }

            builder.Append(pair).Append('&');
        }

        builder.Append(Uri.EscapeDataString(Parameter)).Append('=').Append(Uri.EscapeDataString(credential.Secret));
        // Rebuilt from the original text with canonicalization off, as the request handler made it:
        // a UriBuilder would decode and re-encode the path the policy matched.
        var text = uri.OriginalString;
        var q = text.IndexOf('?');
        proxyRequest.RequestUri = new Uri((q < 0 ? text : text[..q]) + "?" + builder, in Verbatim);
    }

    /// <summary>The secret, and the percent-encoded form the query carries.</summary>
    internal override IEnumerable<string> WireForms(Credential credential) =>
        [credential.Secret, Uri.EscapeDataString(credential.Secret)];
}
