using System.Buffers;
using System.Text;
using SecretlessProxy.Core;

namespace SecretlessProxy.Listeners.Forward;

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

    /// <summary>Parses the request line of a complete head; null when it is malformed or its host is not a host.</summary>
    public static ConnectRequest? Parse(ReadOnlySequence<byte> head) => Parse(head, out _);

    /// <summary>
    /// Parses the request line of a complete head; null when it is malformed, with
    /// <paramref name="invalidHost"/> set when the request line is well formed but its host is
    /// neither a DNS name nor an IP literal (<see cref="HostName"/>).
    /// </summary>
    public static ConnectRequest? Parse(ReadOnlySequence<byte> head, out bool invalidHost)
    {
        invalidHost = false;
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
        var bracketed = host.StartsWith('[');
        if (bracketed)
        {
            if (!host.EndsWith(']'))
            {
                return null;
            }

            host = host[1..^1];
        }

        // The name goes on to policy, DNS and the leaf certificate's subject: only a DNS name or an
        // IP literal (an IPv6 one in brackets, RFC 3986 section 3.2.2) gets that far.
        if (!HostName.TryNormalize(host, out var normalized) || bracketed != normalized.Contains(':'))
        {
            invalidHost = true;
            return null;
        }

        return new ConnectRequest(normalized, port);
    }
}
