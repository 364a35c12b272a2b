using System.Buffers;
using System.Globalization;
using System.Text;

namespace SecretlessProxy.Listeners.Redis;

/// <summary>
/// The pieces of RESP (the Redis serialization protocol, redis.io/docs/reference/protocol-spec)
/// the proxy writes: commands as arrays of bulk strings, which is the only request form a server
/// must accept, and error lines. Replies from the server are never rewritten.
/// </summary>
internal static class RedisWire
{
    /// <summary>The URL scheme of a Redis destination, as policies match it.</summary>
    public const string Scheme = "redis";

    /// <summary>The OpenTelemetry <c>db.system</c> value.</summary>
    public const string DatabaseSystem = "redis";

    /// <summary>
    /// The database every connection starts in. SELECT is not policed: the ACL user is the boundary
    /// in Redis (databases are not access-controlled by the server either).
    /// </summary>
    public const string Database = "0";

    /// <summary>How long an error line the proxy writes may be; a server's own words are cut to this.</summary>
    private const int MaxErrorLength = 500;

    /// <summary>Writes <paramref name="arguments"/> as one command: <c>*N CRLF</c> then <c>$len CRLF bytes CRLF</c> for each.</summary>
    public static void WriteCommand(IBufferWriter<byte> output, IReadOnlyList<ReadOnlyMemory<byte>> arguments)
    {
        WriteHeader(output, (byte)'*', arguments.Count);
        foreach (var argument in arguments)
        {
            WriteHeader(output, (byte)'$', argument.Length);
            output.Write(argument.Span);
            output.Write("\r\n"u8);
        }
    }

    /// <summary>A command from text arguments (the proxy's own commands).</summary>
    public static byte[] Command(params string[] arguments)
    {
        var buffer = new ArrayBufferWriter<byte>();
        WriteCommand(buffer, arguments.Select(a => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes(a)).ToArray());
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// An error reply: <c>-CODE message CRLF</c>. The code is the first word, as clients read it
    /// (ERR, NOPERM, WRONGPASS); line breaks in the message would end the reply early, so they become spaces.
    /// </summary>
    public static byte[] Error(string code, string message)
    {
        var text = message.Replace('\r', ' ').Replace('\n', ' ');
        if (text.Length > MaxErrorLength)
        {
            text = text[..MaxErrorLength] + "...";
        }

        return Encoding.UTF8.GetBytes("-" + code + " " + text + "\r\n");
    }

    /// <summary>Whether <paramref name="name"/> (a command name as sent) is <paramref name="command"/>, ignoring ASCII case as the server does.</summary>
    public static bool Is(ReadOnlySpan<byte> name, string command)
    {
        if (name.Length != command.Length)
        {
            return false;
        }

        for (var i = 0; i < name.Length; i++)
        {
            if ((name[i] | 0x20) != (command[i] | 0x20))
            {
                return false;
            }
        }

        return true;
    }

    private static void WriteHeader(IBufferWriter<byte> output, byte type, int count)
    {
        var span = output.GetSpan(16);
        span[0] = type;
        count.TryFormat(span[1..], out var written, default, CultureInfo.InvariantCulture);
        span[1 + written] = (byte)'\r';
        span[2 + written] = (byte)'\n';
        output.Advance(3 + written);
    }
}
