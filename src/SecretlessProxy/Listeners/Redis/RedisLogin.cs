using System.Buffers;
using System.Text;

namespace SecretlessProxy.Listeners.Redis;

/// <summary>
/// The proxy's login on a new server connection, before any command of the app: <c>AUTH user
/// password</c> (an ACL user, Redis 6 and later), or <c>AUTH password</c> when the server is older
/// and says AUTH takes one argument. AUTH rather than <c>HELLO 3 AUTH</c>: HELLO would switch the
/// connection to RESP3 before the app chose its protocol; the app's own HELLO is passed on (without
/// AUTH) and answered by the server, so the protocol is the app's.
/// </summary>
internal static class RedisLogin
{
    /// <summary>A reply line longer than this is not a reply to AUTH.</summary>
    private const int MaxReplyLine = 4096;

    /// <summary>
    /// Logs in. Returns the AUTH command that worked (sent again in place of the app's AUTH) and the
    /// method name for the span; throws <see cref="RedisLoginException"/> when the server refuses.
    /// </summary>
    public static async Task<(byte[] Command, string Method)> LogInAsync(Stream server, string user, string password, CancellationToken cancellationToken)
    {
        var acl = RedisWire.Command("AUTH", user, password);
        var reply = await ExchangeAsync(server, acl, cancellationToken).ConfigureAwait(false);
        if (reply == "+OK")
        {
            return (acl, "acl");
        }

        if (reply.StartsWith("-ERR wrong number of arguments", StringComparison.OrdinalIgnoreCase))
        {
            // Redis before 6 has one password and no users.
            var legacy = RedisWire.Command("AUTH", password);
            reply = await ExchangeAsync(server, legacy, cancellationToken).ConfigureAwait(false);
            if (reply == "+OK")
            {
                return (legacy, "password");
            }
        }

        if (reply.StartsWith('-'))
        {
            var space = reply.IndexOf(' ', StringComparison.Ordinal);
            var code = space > 1 ? reply[1..space] : "ERR";
            var message = space > 1 ? reply[(space + 1)..] : reply[1..];
            throw new RedisLoginException(code, message);
        }

        throw new RedisLoginException("ERR", "the server answered AUTH with something other than OK or an error", handshake: true);
    }

    private static async Task<string> ExchangeAsync(Stream server, byte[] command, CancellationToken cancellationToken)
    {
        await server.WriteAsync(command, cancellationToken).ConfigureAwait(false);
        await server.FlushAsync(cancellationToken).ConfigureAwait(false);

        // The server sends nothing unasked before the app's first command (no pushes without HELLO 3),
        // so whatever arrives is the reply alone; anything after its line end is refused.
        var line = new ArrayBufferWriter<byte>(64);
        while (true)
        {
            var memory = line.GetMemory(256);
            var read = await server.ReadAsync(memory, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new RedisLoginException("ERR", "the server closed the connection during the login", handshake: true);
            }

            line.Advance(read);
            var end = line.WrittenSpan.IndexOf("\r\n"u8);
            if (end >= 0)
            {
                if (end + 2 != line.WrittenCount)
                {
                    throw new RedisLoginException("ERR", "the server sent more than one reply to AUTH", handshake: true);
                }

                return Encoding.UTF8.GetString(line.WrittenSpan[..end]);
            }

            if (line.WrittenCount >= MaxReplyLine)
            {
                throw new RedisLoginException("ERR", "the server's reply to AUTH is longer than " + MaxReplyLine + " bytes", handshake: true);
            }
        }
    }
}
