using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.RegularExpressions;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// The app-to-server half of the splice. Bytes pass unchanged, but packet headers are followed so
/// that the first packet of each command (sequence id 0) is seen:
/// <list type="bullet">
/// <item>COM_CHANGE_USER would log the connection in as another user: it never reaches the server.
/// In its place the server gets a <c>SIGNAL</c> that fails with error 1227, so the app's answer comes
/// from the server, in order after anything still in flight, and the session stays the credential's.</item>
/// <item>A short <c>KILL [QUERY|CONNECTION] id</c> naming an id from one of this listener's proxy
/// greetings is rewritten to the server's thread id (see <see cref="MySqlThreadRegistry"/>).</item>
/// </list>
/// COM_RESET_CONNECTION keeps the user and passes unchanged.
/// </summary>
internal static partial class MySqlCommandFilter
{
    /// <summary>The longest COM_QUERY looked at for a KILL; anything longer is not one and streams through.</summary>
    private const int KillStatementLimit = 96;

    public const string ChangeUserRefusal = "COM_CHANGE_USER is refused by the proxy: this connection stays logged in as the listener credential's user";

    public static async Task CopyAsync(PipeReader input, Stream server, string listener, MySqlThreadRegistry threads, Action onChangeUser, CancellationToken cancellationToken)
    {
        long remaining = 0;
        var continues = false;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            long written = 0;
            long scanned = 0;
            var length = buffer.Length;
            while (true)
            {
                if (remaining > 0)
                {
                    var take = Math.Min(remaining, length - scanned);
                    scanned += take;
                    remaining -= take;
                    if (remaining > 0)
                    {
                        break;
                    }

                    continue;
                }

                if (length - scanned < MySqlWire.HeaderLength)
                {
                    break;
                }

                var (payloadLength, sequence, first) = PeekHeader(buffer.Slice(scanned, Math.Min(length - scanned, MySqlWire.HeaderLength + 1)));
                var newCommand = sequence == 0 && !continues;
                if (newCommand && payloadLength > 0)
                {
                    if (first is not { } command)
                    {
                        // The command byte has not arrived yet.
                        break;
                    }

                    if (command == MySqlWire.ComChangeUser || (command == MySqlWire.ComQuery && payloadLength <= KillStatementLimit))
                    {
                        if (payloadLength >= MySqlWire.MaxHandshakePacketLength)
                        {
                            throw new MySqlProtocolException(MySqlWire.ErHandshake, "08S01", "an oversized COM_CHANGE_USER");
                        }

                        if (length - scanned < MySqlWire.HeaderLength + payloadLength)
                        {
                            break;
                        }

                        var replacement = command == MySqlWire.ComChangeUser ? RefuseChangeUser(onChangeUser) : RewriteKill(buffer.Slice(scanned + MySqlWire.HeaderLength, payloadLength), listener, threads);
                        if (replacement is not null)
                        {
                            await WriteAsync(server, buffer.Slice(written, scanned - written), cancellationToken).ConfigureAwait(false);
                            await server.WriteAsync(replacement, cancellationToken).ConfigureAwait(false);
                            scanned += MySqlWire.HeaderLength + payloadLength;
                            written = scanned;
                            continues = false;
                            continue;
                        }
                    }
                }

                continues = payloadLength == MySqlWire.MaxPayloadLength;
                scanned += MySqlWire.HeaderLength;
                remaining = payloadLength;
            }

            await WriteAsync(server, buffer.Slice(written, scanned - written), cancellationToken).ConfigureAwait(false);
            await server.FlushAsync(cancellationToken).ConfigureAwait(false);
            input.AdvanceTo(buffer.GetPosition(scanned), buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return;
            }
        }
    }

    private static (int Length, byte Sequence, byte? First) PeekHeader(ReadOnlySequence<byte> head)
    {
        Span<byte> bytes = stackalloc byte[MySqlWire.HeaderLength + 1];
        head.CopyTo(bytes);
        return (MySqlWire.ReadLength(bytes), bytes[3], head.Length > MySqlWire.HeaderLength ? bytes[4] : null);
    }

    private static byte[] RefuseChangeUser(Action onChangeUser)
    {
        onChangeUser();
        var sql = "SIGNAL SQLSTATE '28000' SET MYSQL_ERRNO = " + MySqlWire.ErSpecificAccessDenied + ", MESSAGE_TEXT = '" + ChangeUserRefusal.Replace("'", "''", StringComparison.Ordinal) + "'";
        return Query(sql);
    }

    /// <summary>The rewritten KILL, or null when the statement is not a KILL of one of this listener's proxy ids.</summary>
    private static byte[]? RewriteKill(ReadOnlySequence<byte> packet, string listener, MySqlThreadRegistry threads)
    {
        // Most short queries (BEGIN, COMMIT, SET ...) are not a KILL: decided on the bytes, without
        // a string or the regex.
        Span<byte> payload = stackalloc byte[KillStatementLimit];
        payload = payload[..(int)packet.Length];
        packet.CopyTo(payload);
        var text = payload[1..].TrimStart(" \t\r\n"u8);
        if (text.Length < 4 || !Ascii.EqualsIgnoreCase(text[..4], "KILL"u8))
        {
            return null;
        }

        var sql = Encoding.UTF8.GetString(payload[1..]);
        var match = KillStatement().Match(sql);
        if (!match.Success || !ulong.TryParse(match.Groups["id"].ValueSpan, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id)
            || !threads.TryResolve(listener, id, out var serverId))
        {
            return null;
        }

        var group = match.Groups["id"];
        return Query(string.Concat(sql.AsSpan(0, group.Index), serverId.ToString(System.Globalization.CultureInfo.InvariantCulture), sql.AsSpan(group.Index + group.Length)));
    }

    private static byte[] Query(string sql)
    {
        var text = Encoding.UTF8.GetBytes(sql);
        var payload = new byte[1 + text.Length];
        payload[0] = MySqlWire.ComQuery;
        text.CopyTo(payload, 1);
        return MySqlWire.Packet(0, payload);
    }

    private static async ValueTask WriteAsync(Stream server, ReadOnlySequence<byte> bytes, CancellationToken cancellationToken)
    {
        foreach (var segment in bytes)
        {
            await server.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
        }
    }

    [GeneratedRegex(@"^\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(?:(?:QUERY|CONNECTION)\s+)?(?<id>[0-9]{1,10})\s*;?\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex KillStatement();
}
