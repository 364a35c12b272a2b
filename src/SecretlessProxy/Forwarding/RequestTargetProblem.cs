namespace SecretlessProxy.Forwarding;

/// <summary>
/// Why a request target is ambiguous: a form that upstreams (nginx, Tomcat/Spring, Jetty, IIS, S3)
/// resolve to different paths, so the path a policy matched need not be the path the upstream acts on.
/// </summary>
internal enum RequestTargetProblem
{
    None,

    /// <summary><c>.</c> or <c>..</c> as a segment, in any percent-encoding or with a path parameter (<c>..;</c>).</summary>
    DotSegment,

    /// <summary>A literal or encoded backslash: IIS and Windows servers read it as a separator.</summary>
    Backslash,

    /// <summary><c>%2F</c>: a separator to some upstreams and data to others.</summary>
    EncodedSlash,

    /// <summary>A percent-escape of a percent-escape of a separator or dot, for upstreams that decode twice.</summary>
    DoubleEncoding,

    /// <summary>NUL, other control characters, or a <c>%</c> not followed by two hex digits.</summary>
    ControlOrMalformedEscape,

    /// <summary>Percent-escaped bytes that are not well-formed UTF-8 (overlong forms included).</summary>
    InvalidUtf8,

    /// <summary>A character outside RFC 3986's path characters (space, quote, angle brackets, non-ASCII, fragment).</summary>
    InvalidCharacter,
}
