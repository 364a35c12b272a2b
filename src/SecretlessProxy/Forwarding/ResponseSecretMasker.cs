using System.Text;
using Microsoft.Extensions.Primitives;
using SecretlessProxy.Core;
using SecretlessProxy.Injection;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Keeps the injected value from coming back to the app in a response: masks it in the status
/// line's reason phrase, every header and trailer, and (through <see cref="SecretMaskingStream"/>)
/// identity-encoded bodies, byte for byte so that lengths do not change. For a <c>Query</c>
/// credential it also drops the parameter from the URLs the app would follow (<c>Location</c>,
/// <c>Content-Location</c>, <c>Refresh</c>), keeping the rest of the URL.
/// </summary>
/// <remarks>
/// One instance per injected value (a rule and a credential), built once and shared by every
/// request that injects it. Forms shorter than <see cref="MinimumFormLength"/> bytes are not
/// masked: they match ordinary text often enough to corrupt bodies and headers, and a value that
/// short is no secret worth the damage (the proxy warns about it once per value).
/// </remarks>
internal sealed class ResponseSecretMasker
{
    /// <summary>Shorter forms are not masked (see the remarks).</summary>
    public const int MinimumFormLength = 8;

    /// <summary>What replaces each byte (or character) of a masked value.</summary>
    public const byte MaskByte = (byte)'*';

    private const char MaskChar = '*';

    private static readonly string[] UrlHeaders = ["Location", "Content-Location", "Refresh"];

    private readonly string[] _forms;
    private readonly byte[][] _bodyForms;

    private ResponseSecretMasker(HttpRequestInjector rule, string[] forms, string? queryParameter, bool secretTooShort)
    {
        Rule = rule;
        _forms = forms;
        _bodyForms = Array.ConvertAll(forms, f => Encoding.UTF8.GetBytes(f));
        QueryParameter = queryParameter;
        SecretTooShort = secretTooShort;
        ShortestForm = _bodyForms.Length == 0 ? int.MaxValue : _bodyForms.Min(f => f.Length);
        LongestForm = _bodyForms.Length == 0 ? 0 : _bodyForms.Max(f => f.Length);
    }

    /// <summary>The rule this masker was built for (a credential shared by two policies may be injected two ways).</summary>
    public HttpRequestInjector Rule { get; }

    /// <summary>The <c>Query</c> parameter to drop from URL headers, or null.</summary>
    public string? QueryParameter { get; }

    /// <summary>Whether the raw value is too short to be masked on its own.</summary>
    public bool SecretTooShort { get; }

    public int ShortestForm { get; }

    public int LongestForm { get; }

    /// <summary>Nothing to mask and nothing to drop: the response passes untouched.</summary>
    public bool IsEmpty => _forms.Length == 0 && QueryParameter is null;

    public static ResponseSecretMasker Create(HttpRequestInjector rule, Credential credential)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(credential);
        var candidates = rule.WireForms(credential).Where(f => Encoding.UTF8.GetByteCount(f) >= MinimumFormLength).Distinct(StringComparer.Ordinal).ToList();
        // A form that contains another (the header value "Bearer <secret>" contains the secret) is
        // covered by masking the shorter one; dropping it saves a pass over every body.
        var forms = candidates.Where(f => !candidates.Any(o => o.Length < f.Length && f.Contains(o, StringComparison.Ordinal)))
            .OrderByDescending(f => f.Length)
            .ToArray();
        var tooShort = rule.WireForms(credential).Any(f => string.Equals(f, credential.Secret, StringComparison.Ordinal))
            && Encoding.UTF8.GetByteCount(credential.Secret) < MinimumFormLength;
        return new ResponseSecretMasker(rule, forms, (rule as QueryInjector)?.Parameter, tooShort);
    }

    /// <summary>
    /// Whether a body of this length could hold a form at all (no: the body is not wrapped).
    /// </summary>
    public bool CouldMatchBody(long? contentLength) => _bodyForms.Length > 0 && (contentLength is not { } length || length >= ShortestForm);

    /// <summary>Masks the headers (and reason phrase) the forwarder copied to the app's response.</summary>
    public void MaskResponseHeaders(HttpContext context)
    {
        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseFeature>() is { ReasonPhrase: { } reason } responseFeature &&
            MaskText(reason) is { } maskedReason)
        {
            responseFeature.ReasonPhrase = maskedReason;
        }

        MaskHeaders(context.Response.Headers, rewriteUrls: true);
    }

    /// <summary>Masks every value of every header; with <paramref name="rewriteUrls"/>, drops the query parameter from URL headers first.</summary>
    public void MaskHeaders(IHeaderDictionary headers, bool rewriteUrls)
    {
        List<KeyValuePair<string, StringValues>>? changed = null;
        foreach (var (name, values) in headers)
        {
            if (string.Equals(name, "Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                // Framing, not an echo: a numeric value that happened to match must not break it.
                continue;
            }

            var isUrl = rewriteUrls && QueryParameter is not null && IsUrlHeader(name);
            string?[]? replaced = null;
            for (var i = 0; i < values.Count; i++)
            {
                var value = values[i];
                if (value is null)
                {
                    continue;
                }

                var rewritten = isUrl ? RemoveQueryParameter(value, name) : null;
                var masked = MaskText(rewritten ?? value) ?? rewritten;
                if (masked is not null)
                {
                    replaced ??= values.ToArray();
                    replaced[i] = masked;
                }
            }

            if (replaced is not null)
            {
                (changed ??= []).Add(new(name, new StringValues(replaced)));
            }
        }

        if (changed is not null)
        {
            foreach (var (name, values) in changed)
            {
                headers[name] = values;
            }
        }
    }

    /// <summary>The text with every form masked, or null when it holds none.</summary>
    public string? MaskText(string text)
    {
        char[]? chars = null;
        foreach (var form in _forms)
        {
            var searched = 0;
            while (true)
            {
                var at = (chars is null ? text.AsSpan() : chars.AsSpan()).Slice(searched).IndexOf(form, StringComparison.Ordinal);
                if (at < 0)
                {
                    break;
                }

                chars ??= text.ToCharArray();
                chars.AsSpan(searched + at, form.Length).Fill(MaskChar);
                searched += at + form.Length;
            }
        }

        return chars is null ? null : new string(chars);
    }

    /// <summary>Masks every whole form in <paramref name="window"/>, in place.</summary>
    public void MaskBody(Span<byte> window)
    {
        foreach (var form in _bodyForms)
        {
            var searched = 0;
            while (searched + form.Length <= window.Length)
            {
                // Span.IndexOf of a byte sequence is vectorized (it searches for the first and last
                // bytes together), so a body without the secret costs one fast pass per form.
                var at = window.Slice(searched).IndexOf(form);
                if (at < 0)
                {
                    break;
                }

                window.Slice(searched + at, form.Length).Fill(MaskByte);
                searched += at + form.Length;
            }
        }
    }

    /// <summary>
    /// How many bytes at the end of <paramref name="window"/> could be the start of a form split by
    /// the next read: those are held back until more data shows whether they are. Only such bytes
    /// are held (usually none), so a streamed response (server-sent events) is not delayed by a
    /// fixed tail.
    /// </summary>
    public int HoldBack(ReadOnlySpan<byte> window)
    {
        var hold = 0;
        foreach (var form in _bodyForms)
        {
            // Earliest candidate first: the longest suffix of the window that is a prefix of the form.
            var i = Math.Max(window.Length - (form.Length - 1), 0);
            var limit = window.Length - hold;
            while (i < limit)
            {
                var at = window[i..limit].IndexOf(form[0]);
                if (at < 0)
                {
                    break;
                }

                i += at;
                var tail = window[i..];
                if (tail.SequenceEqual(form.AsSpan(0, tail.Length)))
                {
                    hold = tail.Length;
                    break;
                }

                i++;
            }
        }

        return hold;
    }

    private static bool IsUrlHeader(string name)
    {
        foreach (var header in UrlHeaders)
        {
            if (string.Equals(name, header, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The header value without the <c>Query</c> parameter, or null when it has none. <c>Refresh</c>
    /// is <c>delay; url=URL</c> (not standardised; browsers follow it): only its URL is rewritten.
    /// </summary>
    private string? RemoveQueryParameter(string value, string name)
    {
        if (!string.Equals(name, "Refresh", StringComparison.OrdinalIgnoreCase))
        {
            return RemoveQueryParameterFromUrl(value);
        }

        var at = value.IndexOf("url=", StringComparison.OrdinalIgnoreCase);
        if (at < 0)
        {
            return null;
        }

        var start = at + 4;
        var end = value.Length;
        if (start < value.Length && value[start] is '\'' or '"')
        {
            var close = value.IndexOf(value[start], start + 1);
            start++;
            end = close < 0 ? value.Length : close;
        }

        var rewritten = RemoveQueryParameterFromUrl(value[start..end]);
        return rewritten is null ? null : string.Concat(value.AsSpan(0, start), rewritten, value.AsSpan(end));
    }

    /// <summary>
    /// Drops every <c>name=value</c> pair whose name (decoded the way <see cref="QueryInjector"/>
    /// decodes it) is the injected parameter, whatever its value; the other pairs, their order and
    /// encoding, the path and the fragment are kept as they were.
    /// </summary>
    private string? RemoveQueryParameterFromUrl(string url)
    {
        var question = url.IndexOf('?');
        if (question < 0)
        {
            return null;
        }

        var hash = url.IndexOf('#', question);
        var queryEnd = hash < 0 ? url.Length : hash;
        var query = url.AsSpan(question + 1, queryEnd - question - 1);
        var kept = new StringBuilder(url.Length);
        var keptPairs = 0;
        var removed = false;
        foreach (var range in query.Split('&'))
        {
            var pair = query[range];
            var eq = pair.IndexOf('=');
            var rawName = (eq < 0 ? pair : pair[..eq]).ToString();
            if (string.Equals(Uri.UnescapeDataString(rawName.Replace('+', ' ')), QueryParameter, StringComparison.Ordinal))
            {
                removed = true;
                continue;
            }

            if (keptPairs++ > 0)
            {
                kept.Append('&');
            }

            kept.Append(pair);
        }

        if (!removed)
        {
            return null;
        }

        var rest = keptPairs > 0 ? "?" + kept : string.Empty;
        return string.Concat(url.AsSpan(0, question), rest, url.AsSpan(queryEnd));
    }
}
