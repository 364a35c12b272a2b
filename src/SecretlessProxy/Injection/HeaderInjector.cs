using SecretlessProxy.Core;

namespace SecretlessProxy.Injection;

/// <summary>Writes <c>Format</c> with <c>{token}</c> replaced by the secret into one header.</summary>
internal sealed class HeaderInjector : HttpRequestInjector
{
    public const string Placeholder = "{token}";

    private readonly string _prefix;
    private readonly string _suffix;

    public HeaderInjector(string header, string format)
    {
        Header = header;
        var at = format.IndexOf(Placeholder, StringComparison.Ordinal);
        _prefix = format[..at];
        _suffix = format[(at + Placeholder.Length)..];
    }

    public string Header { get; }

    public override string Kind => "header";

    public override void Apply(HttpRequestMessage proxyRequest, Credential credential)
    {
        RemoveHeader(proxyRequest, Header);
        // Without validation: the value was checked for control characters when it was fetched,
        // and the typed parsers would reject or reformat opaque tokens.
        proxyRequest.Headers.TryAddWithoutValidation(Header, string.Concat(_prefix, credential.Secret, _suffix));
    }

    /// <summary>The secret, and the header value as written (the format may wrap it in more text).</summary>
    internal override IEnumerable<string> WireForms(Credential credential) =>
        [credential.Secret, string.Concat(_prefix, credential.Secret, _suffix)];
}
