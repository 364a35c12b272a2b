using System.Buffers;
using System.Text;

namespace SecretlessProxy.Listeners;

/// <summary>
/// An HTTP/1.1 CONNECT request head (RFC 9110 section 9.3.6): <c>CONNECT host:port HTTP/1.1</c>,
/// headers, empty line. Parsed before Kestrel sees the connection, because Kestrel has no tunnels.
/// </summary>
internal readonly record struct ConnectRequest(string Host, int Port)
{
    public const int MaxHeadBytes = 16 * 1024;

    private static readonly byte[] Prefix = "CONNECT "u8.ToArray();
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();

    /// <summary>True when the buffer starts like a CONNECT request (or could, given more bytes).</summary>
    public static bool MayBeConnect(ReadOnlySequence<byte> buffer)
    {
        var length = (int)Math.Min(buffer.Length, Prefix.Length);
        Span<byte> start = stackalloc byte[Prefix.Length];
        buffer.Slice(0, length).CopyTo(start);
        return start[..length].SequenceEqual(Prefix.AsSpan(0, length));
    }

    /// <summary>Finds the end of the head; returns false while more bytes are needed.</summary>
    public static bool TryFindHeadEnd(ReadOnlySequence<byte> buffer, out SequencePosition end)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (reader.TryReadTo(out ReadOnlySequence<byte> _, HeadEnd, advancePastDelimiter: true))
        {
            end = reader.Position;
            return true;
        }

        end = default;
        return false;
    }

    /// <summary>Parses the request line of a complete head; null when it is malformed.</summary>
    public static ConnectRequest? Parse(ReadOnlySequence<byte> head)
    {
        var text = Encoding.ASCII.GetString(head);
        var lineEnd = text.IndexOf("\r\n", StringComparison.Ordinal);
        var parts = text[..lineEnd].Split(' ');
        if (parts.Length != 3 || parts[0] != "CONNECT" || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            return null;
        }

        // authority-form only (RFC 9112 section 3.2.3): host:port, with brackets around IPv6.
        var authority = parts[1];
        var colon = authority.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(authority.AsSpan(colon + 1), System.Globalization.NumberStyles.None, null, out var port) || port is < 1 or > 65535)
        {
            return null;
        }

        var host = authority[..colon];
        if (host.StartsWith('['))
        {
            if (!host.EndsWith(']'))
            {
                return null;
            }

            host = host[1..^1];
        }

        if (host.Length == 0 || host.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '/' or '@' or '?' or '#'))
        {
            return null;
        }

        return new ConnectRequest(host.ToLowerInvariant(), port);
    }
}
