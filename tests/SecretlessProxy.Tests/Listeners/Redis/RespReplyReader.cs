using System.Text;

namespace SecretlessProxy.Tests.Listeners.Redis;

/// <summary>
/// Reads RESP2 and RESP3 replies from a raw socket, for tests that pipeline by hand. Simple strings
/// come back as "+TEXT", errors as "-TEXT", integers as long, bulk strings as string (null for nil),
/// arrays, sets and pushes as <c>List&lt;object?&gt;</c>, maps as a list of keys and values.
/// </summary>
public sealed class RespReplyReader
{
    private readonly Stream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    public RespReplyReader(Stream stream)
    {
        _stream = stream;
    }

    public async Task<object?> ReadAsync(CancellationToken cancellationToken = default)
    {
        var line = await ReadLineAsync(cancellationToken);
        var type = line[0];
        var rest = line[1..];
        switch (type)
        {
            case '+':
            case '-':
                return line;
            case ':':
                return long.Parse(rest, System.Globalization.CultureInfo.InvariantCulture);
            case '_':
                return null;
            case '#':
                return rest == "t";
            case ',':
            case '(':
                return rest;
            case '$':
            case '=':
            case '!':
                var length = int.Parse(rest, System.Globalization.CultureInfo.InvariantCulture);
                if (length < 0)
                {
                    return null;
                }

                var bytes = await ReadExactlyAsync(length + 2, cancellationToken);
                return Encoding.UTF8.GetString(bytes, 0, length);
            case '*':
            case '~':
            case '>':
            case '%':
            case '|':
                var count = int.Parse(rest, System.Globalization.CultureInfo.InvariantCulture);
                if (count < 0)
                {
                    return null;
                }

                var items = new List<object?>();
                for (var i = 0; i < (type is '%' or '|' ? count * 2 : count); i++)
                {
                    items.Add(await ReadAsync(cancellationToken));
                }

                // An attribute comes before the reply it describes.
                return type == '|' ? await ReadAsync(cancellationToken) : items;
            default:
                throw new InvalidDataException("not a RESP reply: " + line);
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var span = _buffer.AsSpan(_start, _end - _start);
            var lf = span.IndexOf("\r\n"u8);
            if (lf >= 0)
            {
                var line = Encoding.UTF8.GetString(span[..lf]);
                _start += lf + 2;
                return line;
            }

            await FillAsync(cancellationToken);
        }
    }

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken cancellationToken)
    {
        var result = new byte[count];
        var copied = 0;
        while (copied < count)
        {
            if (_start == _end)
            {
                await FillAsync(cancellationToken);
            }

            var n = Math.Min(count - copied, _end - _start);
            _buffer.AsSpan(_start, n).CopyTo(result.AsSpan(copied));
            _start += n;
            copied += n;
        }

        return result;
    }

    private async Task FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        var read = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
        if (read == 0)
        {
            throw new EndOfStreamException("the connection closed");
        }

        _end += read;
    }
}
