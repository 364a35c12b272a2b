using System.Globalization;
using System.Net;
using System.Text;

namespace SecretlessProxy.Injection;

/// <summary>
/// Checks a source object header (<c>x-amz-copy-source: /bucket/key?versionId=v</c>, URL-encoded,
/// leading <c>/</c> optional) against the policy's <c>PathPrefix</c>: a signed copy reads the source
/// with the credential, so the source must be an object the policy would let the app read directly.
/// </summary>
/// <remarks>
/// <para>Path-style upstreams (a bare S3 endpoint such as <c>s3.eu-west-1.amazonaws.com</c>, an IP
/// address, <c>localhost</c>, or <c>AwsSigV4:PathStyle</c>): <c>/bucket/key</c> must start with the
/// prefix, as the request path itself must.</para>
/// <para>Virtual-hosted S3 (<c>bucket.s3.eu-west-1.amazonaws.com</c>, where the prefix is relative to
/// the bucket): the source must be in the host's own bucket and <c>/key</c> must start with the prefix.
/// A copy between buckets needs a path-style policy.</para>
/// <para>Any other host does not say where its bucket is (an S3-compatible server may read the first
/// path segment as a key of the host's bucket), so its sources are refused unless <c>PathStyle</c>
/// says the bucket is in the path.</para>
/// <para>Ambiguous values are refused, never normalised: dot segments, backslashes, a literal
/// <c>+</c> (a space to some decoders), control characters, invalid percent-encoding or UTF-8,
/// anything still percent-encoded after one decode, a query other than <c>versionId</c>, an ARN.</para>
/// </remarks>
internal static class AwsSourceCheck
{
    /// <summary>Null when the source is inside the prefix; otherwise why not, fit for the app (it names only what the app sent).</summary>
    public static string? Refuse(string header, string value, string host, string pathPrefix, bool pathStyle)
    {
        if (value.Length == 0)
        {
            return header + " is empty";
        }

        foreach (var c in value)
        {
            if (c < 0x21 || c > 0x7E)
            {
                return header + " holds a space, control or non-ASCII character: it must be URL-encoded";
            }
        }

        var path = value;
        var question = value.IndexOf('?');
        if (question >= 0)
        {
            path = value[..question];
            var query = value[(question + 1)..];
            if (!query.StartsWith("versionId=", StringComparison.Ordinal) || query.Length == "versionId=".Length || query.AsSpan("versionId=".Length).IndexOfAny("?&=") >= 0)
            {
                return header + " may carry only ?versionId=<id> after the object";
            }
        }

        if (path.Contains('\\') || path.Contains('+'))
        {
            return header + " holds a backslash or '+', which servers read differently: refused as ambiguous";
        }

        if (!TryDecode(path, out var decoded))
        {
            return header + " is not valid percent-encoded UTF-8";
        }

        if (decoded.Any(c => char.IsControl(c) || c == '\\') || StillEncoded(decoded))
        {
            return header + " is encoded more than once or decodes to a control character or backslash: refused as ambiguous";
        }

        var name = decoded.StartsWith('/') ? decoded[1..] : decoded;
        var slash = name.IndexOf('/');
        if (slash <= 0 || slash == name.Length - 1)
        {
            return header + " must name an object as bucket/key";
        }

        var bucket = name[..slash];
        var key = name[(slash + 1)..];
        if (bucket is "." or ".." || !bucket.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
        {
            return header + " must start with a bucket name (access point ARNs are not supported)";
        }

        foreach (var segment in key.Split('/'))
        {
            if (segment is "." or "..")
            {
                return header + " has a dot segment in its key: refused as ambiguous";
            }
        }

        string sourcePath;
        var isS3Host = AwsHostNames.TryGetS3Bucket(host, out var hostBucket);
        if (hostBucket is not null)
        {
            if (!string.Equals(bucket, hostBucket, StringComparison.Ordinal))
            {
                return header + " names bucket '" + bucket + "', and this virtual-hosted policy is for bucket '" + hostBucket + "' only";
            }

            sourcePath = "/" + key;
        }
        else if (pathStyle || isS3Host || IPAddress.TryParse(host.Trim('[', ']'), out _) || string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            sourcePath = "/" + bucket + "/" + key;
        }
        else
        {
            return header + " cannot be checked: host '" + host + "' does not say whether its bucket is in the host or the path (set AwsSigV4:PathStyle for a path-style S3-compatible upstream)";
        }

        if (!sourcePath.StartsWith(pathPrefix, StringComparison.Ordinal))
        {
            return header + " names '" + sourcePath + "', outside this policy's PathPrefix '" + pathPrefix + "'";
        }

        return null;
    }

    /// <summary>One strict percent-decoding: every '%' starts two hex digits and the bytes are valid UTF-8.</summary>
    private static bool TryDecode(string value, out string decoded)
    {
        decoded = string.Empty;
        var bytes = new byte[value.Length];
        var n = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c != '%')
            {
                bytes[n++] = (byte)c;
                continue;
            }

            if (i + 2 >= value.Length || !byte.TryParse(value.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var b))
            {
                return false;
            }

            bytes[n++] = b;
            i += 2;
        }

        try
        {
            decoded = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes, 0, n);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    /// <summary>A '%' followed by two hex digits after one decode: a second encoding layer some server would peel.</summary>
    private static bool StillEncoded(string decoded)
    {
        for (var i = decoded.IndexOf('%'); i >= 0 && i + 2 < decoded.Length; i = decoded.IndexOf('%', i + 1))
        {
            if (char.IsAsciiHexDigit(decoded[i + 1]) && char.IsAsciiHexDigit(decoded[i + 2]))
            {
                return true;
            }
        }

        return false;
    }
}
