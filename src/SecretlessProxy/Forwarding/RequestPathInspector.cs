using System.Buffers;
using System.Text;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Reads a request path exactly as it arrived on the wire and says whether every upstream would
/// route it the same way. Policy matches the decoded form (<see cref="MatchPath"/>) while the raw
/// bytes are forwarded unchanged, so the two must not be able to differ in where they lead: dot
/// segments in any encoding, path parameters on them (<c>..;</c>, Tomcat and Jetty), backslashes (IIS),
/// double encodings and malformed UTF-8 are refused instead of normalised into one reading that the
/// upstream may not share. RFC 3986 section 3.3 and 6.2.2 for the grammar and the normalisations.
/// </summary>
internal readonly struct RequestPathInspector
{
    // RFC 3986 pchar plus '/': unreserved, sub-delims, ':' and '@'. '%' is handled separately.
    // '[', ']', '{', '}', '|', '^' and '`' are not pchars but route identically everywhere and some
    // clients send them unescaped, so they pass; space, quotes, angle brackets and '#' do not.
    private static readonly SearchValues<char> Plain = SearchValues.Create(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/[]{}|^`");

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private RequestPathInspector(RequestTargetProblem problem, string matchPath, bool hasEncodedSlash)
    {
        Problem = problem;
        MatchPath = matchPath;
        HasEncodedSlash = hasEncodedSlash;
    }

    public RequestTargetProblem Problem { get; }

    /// <summary>
    /// The path policy matches: percent-escapes decoded, except <c>%2F</c>, which stays as the three
    /// characters <c>%2F</c> so that an encoded slash never becomes a separator a prefix could match.
    /// </summary>
    public string MatchPath { get; }

    public bool HasEncodedSlash { get; }

    public static RequestPathInspector Inspect(string rawPath)
    {
        var special = rawPath.AsSpan().IndexOfAnyExcept(Plain);
        if (special < 0)
        {
            // The common case: nothing encoded, so the raw path is the match path. Only dot segments
            // remain to check.
            return new RequestPathInspector(HasDotSegment(rawPath) ? RequestTargetProblem.DotSegment : RequestTargetProblem.None, rawPath, false);
        }

        var decoded = new StringBuilder(rawPath.Length);
        decoded.Append(rawPath, 0, special);
        var encodedSlash = false;
        byte[]? utf8 = null;
        var utf8Length = 0;
        for (var i = special; i < rawPath.Length; i++)
        {
            var c = rawPath[i];
            if (c != '%')
            {
                if (utf8Length > 0 && !FlushUtf8(decoded, utf8!, ref utf8Length))
                {
                    return Refused(RequestTargetProblem.InvalidUtf8);
                }

                if (Plain.Contains(c))
                {
                    decoded.Append(c);
                    continue;
                }

                return Refused(c switch
                {
                    '\\' => RequestTargetProblem.Backslash,
                    < ' ' or '\x7f' => RequestTargetProblem.ControlOrMalformedEscape,
                    _ => RequestTargetProblem.InvalidCharacter,
                });
            }

            if (i + 2 >= rawPath.Length || !char.IsAsciiHexDigit(rawPath[i + 1]) || !char.IsAsciiHexDigit(rawPath[i + 2]))
            {
                return Refused(RequestTargetProblem.ControlOrMalformedEscape);
            }

            var b = (byte)((HexValue(rawPath[i + 1]) << 4) | HexValue(rawPath[i + 2]));
            i += 2;
            if (b >= 0x80)
            {
                utf8 ??= new byte[rawPath.Length / 3 + 1];
                utf8[utf8Length++] = b;
                continue;
            }

            if (utf8Length > 0 && !FlushUtf8(decoded, utf8!, ref utf8Length))
            {
                return Refused(RequestTargetProblem.InvalidUtf8);
            }

            switch (b)
            {
                case (byte)'/':
                    encodedSlash = true;
                    decoded.Append("%2F");
                    break;
                case (byte)'\\':
                    return Refused(RequestTargetProblem.Backslash);
                case (byte)'%' when i + 1 < rawPath.Length && (rawPath[i + 1] == '%' || char.IsAsciiHexDigit(rawPath[i + 1])):
                    // "%252e", "%25%32%65": one decode yields another escape. Refusing every %25 that
                    // starts one also keeps the "%2F" written for an encoded slash unambiguous.
                    return Refused(RequestTargetProblem.DoubleEncoding);
                case < 0x20 or 0x7f:
                    return Refused(RequestTargetProblem.ControlOrMalformedEscape);
                default:
                    decoded.Append((char)b);
                    break;
            }
        }

        if (utf8Length > 0 && !FlushUtf8(decoded, utf8!, ref utf8Length))
        {
            return Refused(RequestTargetProblem.InvalidUtf8);
        }

        var matchPath = decoded.ToString();
        // An encoded slash is a separator to upstreams that decode before routing, so dot segments
        // are looked for between encoded slashes too.
        var problem = HasDotSegment(encodedSlash ? matchPath.Replace("%2F", "/", StringComparison.Ordinal) : matchPath)
            ? RequestTargetProblem.DotSegment
            : RequestTargetProblem.None;
        return new RequestPathInspector(problem, matchPath, encodedSlash);
    }

    /// <summary>The same inspection with a route's (decoded) base path in front of the match path.</summary>
    public RequestPathInspector WithBase(string basePath) => new(Problem, basePath + MatchPath, HasEncodedSlash);

    /// <summary>Describes a problem for the app's 400 (the reason, never anything of a credential).</summary>
    public static string Describe(RequestTargetProblem problem) => problem switch
    {
        RequestTargetProblem.DotSegment => "the path has a '.' or '..' segment (in some encoding, or with a ';' parameter), which upstreams resolve differently",
        RequestTargetProblem.Backslash => "the path has a backslash (literal or %5C), a separator to some upstreams",
        RequestTargetProblem.EncodedSlash => "the path has an encoded slash (%2F), a separator to some upstreams; the policy does not allow encoded slashes",
        RequestTargetProblem.DoubleEncoding => "the path has a double percent-encoding of '.', '/', '\\' or '%', which upstreams that decode twice read as another path",
        RequestTargetProblem.ControlOrMalformedEscape => "the path has a control character, NUL, or a '%' not followed by two hex digits",
        RequestTargetProblem.InvalidUtf8 => "the path's percent-encoded bytes are not well-formed UTF-8",
        RequestTargetProblem.InvalidCharacter => "the path has a character that must be percent-encoded (RFC 3986 section 3.3)",
        _ => "the path is ambiguous",
    };

    private static RequestPathInspector Refused(RequestTargetProblem problem) => new(problem, string.Empty, false);

    /// <summary>
    /// A segment made only of dots and spaces with at least one dot, before any ';' parameter: '.' and
    /// '..' everywhere, and '...' or '.. ' where IIS and Windows trim trailing dots and spaces.
    /// </summary>
    private static bool HasDotSegment(string path)
    {
        if (!path.Contains('.'))
        {
            return false;
        }

        foreach (var range in path.AsSpan().Split('/'))
        {
            var segment = path.AsSpan()[range];
            var parameters = segment.IndexOf(';');
            if (parameters >= 0)
            {
                segment = segment[..parameters];
            }

            if (segment.Contains('.') && segment.IndexOfAnyExcept(". ") < 0)
            {
                return true;
            }
        }

        return false;
    }

    private static bool FlushUtf8(StringBuilder decoded, byte[] utf8, ref int length)
    {
        try
        {
            decoded.Append(StrictUtf8.GetString(utf8, 0, length));
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        finally
        {
            length = 0;
        }
    }

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
