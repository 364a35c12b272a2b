using System.Buffers;
using System.Text;

namespace SecretlessProxy.Listeners.Redis;

/// <summary>
/// Reads the app's command stream on its way to the server, so that the app cannot log in as anyone
/// else on the proxy's connection. RESP requests delimit themselves, so every command is found
/// without buffering its values; only a command's head is held until its name is known.
/// </summary>
/// <remarks>
/// <para>
/// What is rewritten, and why in this way: the app's <c>AUTH</c> (one or two arguments) becomes the
/// proxy's own <c>AUTH</c> with the connection's credential, <c>HELLO … AUTH u p</c> loses its AUTH
/// pair, and <c>RESET</c> (which logs the connection out, to the <c>default</c> user) becomes a
/// command the server does not know, whose error tells the app why. Every rewritten command still
/// goes to the server and the server's own reply answers it, so replies stay in order however the
/// app pipelines, inside MULTI (queued like the original), in pub/sub and with CLIENT REPLY: the
/// proxy never has to count replies or insert one of its own.
/// </para>
/// <para>
/// The parse is stricter than the server's (which skips the two bytes after a bulk string and after
/// a length without looking at them): anything the server might read differently from the proxy is
/// a protocol error that ends the connection, so no AUTH can be smuggled past the filter.
/// </para>
/// </remarks>
internal sealed class RedisCommandFilter
{
    /// <summary>The server's PROTO_INLINE_MAX_SIZE: an inline command longer than this is refused.</summary>
    public const int MaxInlineLength = 64 * 1024;

    /// <summary>How large an AUTH or HELLO the proxy holds to rewrite; legitimate ones are a few hundred bytes.</summary>
    public const int MaxInspectedCommandBytes = 64 * 1024;

    /// <summary>How many arguments an AUTH or HELLO may have (HELLO with AUTH and SETNAME has six).</summary>
    public const int MaxInspectedArguments = 16;

    /// <summary>A length line: <c>*</c> or <c>$</c>, up to 18 digits, CRLF.</summary>
    private const int MaxLengthLine = 24;

    /// <summary>What the app gets, through the server, for RESET: the server's "unknown command" error names it.</summary>
    private static readonly byte[] RefusedReset = RedisWire.Command("RESET (refused by secretless-proxy: it would log the connection out of its ACL user)");

    private static readonly byte[] BareAuth = RedisWire.Command("AUTH");

    private readonly ReadOnlyMemory<byte> _proxyAuth;
    private State _state;
    private long _elementsLeft;
    private long _bulkLeft;
    private bool _discard;

    /// <param name="proxyAuth">The proxy's own AUTH command with the connection's credential, sent in place of the app's.</param>
    public RedisCommandFilter(ReadOnlyMemory<byte> proxyAuth)
    {
        _proxyAuth = proxyAuth;
    }

    private enum State
    {
        CommandStart,
        ElementHeader,
        BulkData,
        BulkEnd,
    }

    /// <summary>How many AUTH commands of the app were answered with the proxy's login.</summary>
    public int AuthReplaced { get; private set; }

    /// <summary>How many HELLO commands lost an AUTH pair.</summary>
    public int HelloAuthStripped { get; private set; }

    /// <summary>How many RESET commands were refused.</summary>
    public int ResetRefused { get; private set; }

    /// <summary>
    /// Passes every complete part of <paramref name="input"/> to <paramref name="toServer"/> (rewritten
    /// where needed) and leaves the rest in <paramref name="input"/> for when more bytes arrive.
    /// Returns null, or the protocol error for the app after which the connection must close.
    /// </summary>
    public string? Filter(ref ReadOnlySequence<byte> input, IBufferWriter<byte> toServer)
    {
        while (!input.IsEmpty)
        {
            switch (_state)
            {
                case State.CommandStart:
                    new SequenceReader<byte>(input).TryPeek(out var first);
                    var error = first == (byte)'*' ? CommandHead(ref input, toServer, out var progressed) : Inline(ref input, toServer, out progressed);
                    if (error is not null || !progressed)
                    {
                        return error;
                    }

                    break;

                case State.ElementHeader:
                    var found = ReadLength(input, (byte)'$', "bulk", out var length, out var lineLength);
                    if (found is not null)
                    {
                        return found.Length == 0 ? null : found;
                    }

                    Pass(ref input, lineLength, toServer);
                    _bulkLeft = length;
                    _state = length == 0 ? State.BulkEnd : State.BulkData;
                    break;

                case State.BulkData:
                    var chunk = Math.Min(_bulkLeft, input.Length);
                    Pass(ref input, chunk, toServer);
                    _bulkLeft -= chunk;
                    if (_bulkLeft == 0)
                    {
                        _state = State.BulkEnd;
                    }

                    break;

                case State.BulkEnd:
                    if (input.Length < 2)
                    {
                        return null;
                    }

                    if (!IsCrlf(input))
                    {
                        return "Protocol error: expected CRLF after a bulk string";
                    }

                    Pass(ref input, 2, toServer);
                    EndElement();
                    break;
            }
        }

        return null;
    }

    private void EndElement()
    {
        if (--_elementsLeft == 0)
        {
            _state = State.CommandStart;
            _discard = false;
        }
        else
        {
            _state = State.ElementHeader;
        }
    }

    private void Pass(ref ReadOnlySequence<byte> input, long count, IBufferWriter<byte> toServer)
    {
        if (!_discard)
        {
            foreach (var segment in input.Slice(0, count))
            {
                toServer.Write(segment.Span);
            }
        }

        input = input.Slice(count);
    }

    /// <summary>
    /// <c>*N CRLF $L CRLF</c> and, when L could be AUTH, HELLO or RESET, the name: held until
    /// complete, then passed on (or the whole command rewritten).
    /// </summary>
    private string? CommandHead(ref ReadOnlySequence<byte> input, IBufferWriter<byte> toServer, out bool progressed)
    {
        progressed = false;
        var error = ReadLength(input, (byte)'*', "multibulk", out var count, out var headerLength);
        if (error is not null)
        {
            return error.Length == 0 ? null : error;
        }

        if (count > int.MaxValue)
        {
            return "Protocol error: invalid multibulk length";
        }

        if (count == 0)
        {
            // The server skips an empty array; so does the proxy.
            input = input.Slice(headerLength);
            progressed = true;
            return null;
        }

        var rest = input.Slice(headerLength);
        error = ReadLength(rest, (byte)'$', "bulk", out var nameLength, out var nameHeaderLength);
        if (error is not null)
        {
            return error.Length == 0 ? null : error;
        }

        if (nameLength is 4 or 5)
        {
            if (rest.Length < nameHeaderLength + nameLength + 2)
            {
                return null;
            }

            Span<byte> name = stackalloc byte[5];
            name = name[..(int)nameLength];
            rest.Slice(nameHeaderLength, nameLength).CopyTo(name);
            if (RedisWire.Is(name, "AUTH") || RedisWire.Is(name, "HELLO"))
            {
                var arguments = Collect(input, count, out var consumed, out error);
                if (arguments is null)
                {
                    return error;
                }

                input = input.Slice(consumed);
                progressed = true;
                Rewrite(arguments, toServer);
                return null;
            }

            if (RedisWire.Is(name, "RESET"))
            {
                ResetRefused++;
                toServer.Write(RefusedReset);
                _discard = true;
            }

            // The name goes too; its CRLF is checked by the BulkEnd state.
            _elementsLeft = count;
            _bulkLeft = nameLength;
            Pass(ref input, headerLength + nameHeaderLength + nameLength, toServer);
            _state = State.BulkEnd;
            progressed = true;
            return null;
        }

        _elementsLeft = count;
        _bulkLeft = nameLength;
        Pass(ref input, headerLength + nameHeaderLength, toServer);
        _state = nameLength == 0 ? State.BulkEnd : State.BulkData;
        progressed = true;
        return null;
    }

    /// <summary>Every argument of an AUTH or HELLO, or null (need more bytes, or <paramref name="error"/>).</summary>
    private static List<byte[]>? Collect(ReadOnlySequence<byte> input, long count, out long consumed, out string? error)
    {
        consumed = 0;
        error = null;
        if (count > MaxInspectedArguments)
        {
            error = "Protocol error: AUTH or HELLO with more than " + MaxInspectedArguments + " arguments";
            return null;
        }

        ReadLength(input, (byte)'*', "multibulk", out _, out var position);
        var arguments = new List<byte[]>((int)count);
        for (var i = 0; i < count; i++)
        {
            var rest = input.Slice(position);
            var found = ReadLength(rest, (byte)'$', "bulk", out var length, out var lineLength);
            if (found is not null)
            {
                error = found.Length == 0 ? null : found;
                return null;
            }

            if (position + lineLength + length + 2 > MaxInspectedCommandBytes)
            {
                error = "Protocol error: AUTH or HELLO longer than " + MaxInspectedCommandBytes + " bytes";
                return null;
            }

            if (rest.Length < lineLength + length + 2)
            {
                return null;
            }

            arguments.Add(rest.Slice(lineLength, length).ToArray());
            if (!IsCrlf(rest.Slice(lineLength + length)))
            {
                error = "Protocol error: expected CRLF after a bulk string";
                return null;
            }

            position += lineLength + length + 2;
        }

        consumed = position;
        return arguments;
    }

    /// <summary>An inline command: one line, split as the server splits it, sent on as an array.</summary>
    private string? Inline(ref ReadOnlySequence<byte> input, IBufferWriter<byte> toServer, out bool progressed)
    {
        progressed = false;
        var end = input.PositionOf((byte)'\n');
        if (end is null)
        {
            return input.Length >= MaxInlineLength ? "Protocol error: too big inline request" : null;
        }

        var line = input.Slice(0, end.Value);
        if (line.Length >= MaxInlineLength)
        {
            return "Protocol error: too big inline request";
        }

        var bytes = line.ToArray().AsSpan();
        if (bytes.Length > 0 && bytes[^1] == '\r')
        {
            bytes = bytes[..^1];
        }

        if (bytes.Contains((byte)0))
        {
            // The server reads the line as a C string and would stop at the NUL: refused rather than guessed.
            return "Protocol error: NUL byte in an inline request";
        }

        var arguments = RedisInlineCommand.Split(bytes);
        if (arguments is null)
        {
            return "Protocol error: unbalanced quotes in request";
        }

        input = input.Slice(input.GetPosition(1, end.Value));
        progressed = true;
        if (arguments.Count > 0)
        {
            if (RedisWire.Is(arguments[0], "AUTH") || RedisWire.Is(arguments[0], "HELLO"))
            {
                Rewrite(arguments, toServer);
            }
            else if (RedisWire.Is(arguments[0], "RESET"))
            {
                ResetRefused++;
                toServer.Write(RefusedReset);
            }
            else
            {
                RedisWire.WriteCommand(toServer, arguments.Select(a => (ReadOnlyMemory<byte>)a).ToArray());
            }
        }

        return null;
    }

    /// <summary>The AUTH or HELLO that goes to the server instead of the app's.</summary>
    private void Rewrite(List<byte[]> arguments, IBufferWriter<byte> toServer)
    {
        if (RedisWire.Is(arguments[0], "AUTH"))
        {
            if (arguments.Count is 2 or 3)
            {
                AuthReplaced++;
                toServer.Write(_proxyAuth.Span);
            }
            else
            {
                // The server's arity error, without the app's arguments.
                toServer.Write(BareAuth);
            }

            return;
        }

        // HELLO [protover [AUTH username password] [SETNAME clientname]]: the options are walked as the
        // server walks them (hello_command); an AUTH pair is dropped; at the first option the server
        // would refuse, that option is kept for its syntax error and everything after it is dropped.
        var kept = new List<ReadOnlyMemory<byte>> { arguments[0] };
        if (arguments.Count > 1)
        {
            kept.Add(arguments[1]);
        }

        var stripped = false;
        for (var j = 2; j < arguments.Count; j++)
        {
            var more = arguments.Count - 1 - j;
            if (RedisWire.Is(arguments[j], "AUTH") && more >= 2)
            {
                stripped = true;
                j += 2;
            }
            else if (RedisWire.Is(arguments[j], "SETNAME") && more >= 1)
            {
                kept.Add(arguments[j]);
                kept.Add(arguments[j + 1]);
                j++;
            }
            else
            {
                kept.Add(arguments[j]);
                stripped |= more > 0;
                break;
            }
        }

        if (stripped)
        {
            HelloAuthStripped++;
        }

        RedisWire.WriteCommand(toServer, kept);
    }

    /// <summary>
    /// A length line at the start of <paramref name="input"/>: <paramref name="type"/>, digits, CRLF.
    /// Returns null when read, "" when more bytes are needed, else the protocol error.
    /// </summary>
    private static string? ReadLength(ReadOnlySequence<byte> input, byte type, string what, out long value, out long lineLength)
    {
        value = 0;
        lineLength = 0;
        Span<byte> head = stackalloc byte[MaxLengthLine];
        var available = (int)Math.Min(MaxLengthLine, input.Length);
        if (available == 0)
        {
            return string.Empty;
        }

        head = head[..available];
        input.Slice(0, available).CopyTo(head);
        if (head[0] != type)
        {
            return "Protocol error: expected '" + (char)type + "', got '" + Printable(head[0]) + "'";
        }

        var cr = head.IndexOf((byte)'\r');
        if (cr < 0)
        {
            return available == MaxLengthLine || head[1..].ContainsAnyExceptInRange((byte)'0', (byte)'9') ? "Protocol error: invalid " + what + " length" : string.Empty;
        }

        if (cr + 1 == available)
        {
            return available == MaxLengthLine ? "Protocol error: invalid " + what + " length" : string.Empty;
        }

        var digits = head[1..cr];
        if (head[cr + 1] != '\n' || digits.Length is 0 or > 18 || digits.ContainsAnyExceptInRange((byte)'0', (byte)'9') || (digits[0] == '0' && digits.Length > 1))
        {
            return "Protocol error: invalid " + what + " length";
        }

        foreach (var digit in digits)
        {
            value = (value * 10) + (digit - '0');
        }

        lineLength = cr + 2;
        return null;
    }

    private static bool IsCrlf(ReadOnlySequence<byte> input)
    {
        var reader = new SequenceReader<byte>(input);
        return reader.IsNext("\r\n"u8);
    }

    private static string Printable(byte b) => b is >= 0x20 and < 0x7F ? Encoding.ASCII.GetString([b]) : "\\x" + b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture);
}
