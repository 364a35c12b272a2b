using System.Buffers;
using Yarp.ReverseProxy.Utilities.Tls;

namespace SecretlessProxy.Listeners;

/// <summary>
/// Tells from a connection's first bytes, without consuming them, whether it is TLS (and which host
/// its ClientHello names) or HTTP/1.x, so a Transparent listener can decide before any byte leaves.
/// </summary>
internal static class ProtocolPeek
{
    /// <summary>
    /// A TLS record is at most 2^14 bytes plus its 5-byte header (RFC 8446 section 5.1); a ClientHello
    /// the proxy reads must fit in the first one.
    /// </summary>
    public const int MaxPeekBytes = (1 << 14) + TlsFrameHelper.HeaderSize;

    // RFC 9110 section 9: methods are tokens; the registered ones are upper-case letters and '-'.
    private const int MaxMethodLength = 20;

    /// <param name="buffer">Everything received so far.</param>
    /// <param name="completed">The client finished sending: what is there is all there will be.</param>
    public static PeekResult Classify(ReadOnlySequence<byte> buffer, bool completed)
    {
        if (buffer.IsEmpty)
        {
            return new(completed ? PeekedProtocol.Other : PeekedProtocol.NeedMore);
        }

        var first = buffer.FirstSpan[0];
        if (first == (byte)TlsContentType.Handshake)
        {
            return ClassifyTls(buffer, completed);
        }

        if (first is >= (byte)'A' and <= (byte)'Z')
        {
            return ClassifyHttp(buffer, completed);
        }

        return new(PeekedProtocol.Other);
    }

    private static PeekResult ClassifyTls(ReadOnlySequence<byte> buffer, bool completed)
    {
        var window = buffer.Length > MaxPeekBytes ? buffer.Slice(0, MaxPeekBytes) : buffer;
        ReadOnlySpan<byte> frame = window.IsSingleSegment ? window.FirstSpan : window.ToArray();
        var info = default(TlsFrameHelper.TlsFrameInfo);
        var complete = TlsFrameHelper.TryGetFrameInfo(frame, ref info, TlsFrameHelper.ProcessingOptions.ServerName);
        if (!complete && info.ParsingStatus == TlsFrameHelper.ParsingStatus.IncompleteFrame && !completed && buffer.Length < MaxPeekBytes)
        {
            return new(PeekedProtocol.NeedMore);
        }

        if (!complete || info.HandshakeType != TlsHandshakeType.ClientHello)
        {
            // A handshake record that is not a whole ClientHello: some other protocol that happens to
            // start with 0x16, or a hello the proxy cannot read. Either way it is not decrypted.
            return new(PeekedProtocol.Other);
        }

        return new(PeekedProtocol.Tls, string.IsNullOrEmpty(info.TargetName) ? null : info.TargetName);
    }

    private static PeekResult ClassifyHttp(ReadOnlySequence<byte> buffer, bool completed)
    {
        var reader = new SequenceReader<byte>(buffer);
        var length = 0;
        while (reader.TryRead(out var b))
        {
            if (b == (byte)' ')
            {
                return new(length > 0 ? PeekedProtocol.Http : PeekedProtocol.Other);
            }

            if (!(b is >= (byte)'A' and <= (byte)'Z' || b == (byte)'-') || ++length > MaxMethodLength)
            {
                return new(PeekedProtocol.Other);
            }
        }

        return new(completed ? PeekedProtocol.Other : PeekedProtocol.NeedMore);
    }
}
