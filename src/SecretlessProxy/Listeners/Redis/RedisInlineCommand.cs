namespace SecretlessProxy.Listeners.Redis;

/// <summary>
/// An inline command (a line of text, as <c>telnet</c> or <c>redis-cli</c>'s raw mode sends) split
/// into arguments by the server's own rules (sdssplitargs in the Redis source): white space
/// separates; double quotes take <c>\xHH</c> and backslash escapes; single quotes take only
/// <c>\'</c>; a closing quote must be followed by white space or the end. The proxy forwards what
/// it parsed as an array of bulk strings, so the server can never read the line differently.
/// </summary>
internal static class RedisInlineCommand
{
    /// <summary>The arguments, or null when the line is malformed (unbalanced quotes, a NUL byte).</summary>
    public static List<byte[]>? Split(ReadOnlySpan<byte> line)
    {
        var arguments = new List<byte[]>();
        var current = new List<byte>();
        var i = 0;
        if (line.Contains((byte)0))
        {
            // The server reads the line as a C string and would stop at the NUL: refused rather than guessed.
            return null;
        }

        while (true)
        {
            while (i < line.Length && IsSpace(line[i]))
            {
                i++;
            }

            if (i == line.Length)
            {
                return arguments;
            }

            current.Clear();
            var inDouble = false;
            var inSingle = false;
            var done = false;
            while (!done)
            {
                var end = i >= line.Length;
                if (inDouble)
                {
                    if (end)
                    {
                        return null;
                    }

                    var c = line[i];
                    if (c == '\\' && i + 3 < line.Length && line[i + 1] == 'x' && IsHex(line[i + 2]) && IsHex(line[i + 3]))
                    {
                        current.Add((byte)((HexValue(line[i + 2]) << 4) | HexValue(line[i + 3])));
                        i += 3;
                    }
                    else if (c == '\\' && i + 1 < line.Length)
                    {
                        i++;
                        current.Add(line[i] switch
                        {
                            (byte)'n' => (byte)'\n',
                            (byte)'r' => (byte)'\r',
                            (byte)'t' => (byte)'\t',
                            (byte)'b' => (byte)'\b',
                            (byte)'a' => (byte)'\a',
                            var other => other,
                        });
                    }
                    else if (c == '"')
                    {
                        if (i + 1 < line.Length && !IsSpace(line[i + 1]))
                        {
                            return null;
                        }

                        done = true;
                    }
                    else
                    {
                        current.Add(c);
                    }
                }
                else if (inSingle)
                {
                    if (end)
                    {
                        return null;
                    }

                    var c = line[i];
                    if (c == '\\' && i + 1 < line.Length && line[i + 1] == '\'')
                    {
                        i++;
                        current.Add((byte)'\'');
                    }
                    else if (c == '\'')
                    {
                        if (i + 1 < line.Length && !IsSpace(line[i + 1]))
                        {
                            return null;
                        }

                        done = true;
                    }
                    else
                    {
                        current.Add(c);
                    }
                }
                else if (end)
                {
                    done = true;
                }
                else
                {
                    switch (line[i])
                    {
                        case (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t':
                            done = true;
                            break;
                        case (byte)'"':
                            inDouble = true;
                            break;
                        case (byte)'\'':
                            inSingle = true;
                            break;
                        default:
                            current.Add(line[i]);
                            break;
                    }
                }

                if (i < line.Length)
                {
                    i++;
                }
            }

            arguments.Add(current.ToArray());
        }
    }

    // C's isspace: space, \t, \n, \v, \f, \r.
    private static bool IsSpace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\n' or 0x0B or 0x0C or (byte)'\r';

    private static bool IsHex(byte c) => c is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F';

    private static int HexValue(byte c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
