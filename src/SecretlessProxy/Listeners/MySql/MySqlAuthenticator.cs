using System.Buffers.Binary;
using System.Text;
using SecretlessProxy.Core;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// Logs in to a MySQL or MariaDB server with the credential's user name and password, by whichever
/// method the server asks for (MySQL docs, "Connection Phase", "Authentication Method Switch"):
/// mysql_native_password, caching_sha2_password (fast path; full authentication by the cleartext
/// password over verified TLS, or RSA when allowed), MariaDB's client_ed25519, and
/// sha256_password / mysql_clear_password over verified TLS. No error raised here carries the password.
/// </summary>
/// <remarks>
/// The challenge-response methods (native, the caching_sha2 scramble, ed25519) are answered for any
/// server the listener reaches, as every MySQL client does; a server that is not verified could use
/// the answer to a nonce of its choosing for offline guessing, which is why the default Tls Mode is
/// VerifyFull. The password itself (cleartext, or RSA under a key the server supplies) goes only where
/// the listener's settings say it may.
/// </remarks>
internal static class MySqlAuthenticator
{
    private const byte FastAuthSuccess = 0x03;
    private const byte PerformFullAuthentication = 0x04;
    private const byte CachingSha2RequestPublicKey = 0x02;
    private const byte Sha256RequestPublicKey = 0x01;
    private const int MaxRounds = 8;

    /// <summary>
    /// Sends the HandshakeResponse (built by <paramref name="response"/> from the plugin name and its
    /// auth data) and runs the exchange up to the server's OK. Returns the method that logged in and
    /// the OK packet's payload.
    /// </summary>
    /// <exception cref="MySqlProtocolException">The server refused the login, asked for an unsupported or weakened method, or misbehaved.</exception>
    public static async Task<(string Method, byte[] Ok)> AuthenticateAsync(Stream server, MySqlPacketReader reader, MySqlServerGreeting greeting, byte sequence, Func<string, byte[], byte, byte[]> response, string password, MySqlLoginOptions options, CancellationToken cancellationToken)
    {
        var plugin = greeting.AuthPlugin is MySqlWire.NativePassword or MySqlWire.CachingSha2Password or MySqlWire.Ed25519 ? greeting.AuthPlugin : MySqlWire.NativePassword;
        var nonce = greeting.Scramble;
        await WriteAsync(server, response(plugin, await RespondAsync(plugin, password, nonce).ConfigureAwait(false), sequence), cancellationToken).ConfigureAwait(false);
        var awaitingKey = false;
        for (var round = 0; round < MaxRounds; round++)
        {
            var (received, payload) = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var next = (byte)(received + 1);
            if (payload.Length == 0)
            {
                throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server sent an empty packet during the login", AccessOutcome.UpstreamFailed);
            }

            switch (payload[0])
            {
                case MySqlWire.OkHeader when !awaitingKey:
                    return (plugin, payload);

                case MySqlWire.ErrHeader:
                    throw ServerError(payload);

                case MySqlWire.EofOrSwitchHeader:
                    // AuthSwitchRequest: 0xFE, the plugin name, its data. A lone 0xFE is the pre-4.1
                    // "old password" switch, which is broken by design.
                    if (payload.Length == 1)
                    {
                        throw new MySqlProtocolException(MySqlWire.ErNotSupportedAuthMode, "08004", "the database server asked for mysql_old_password (pre-4.1), which the proxy does not use", AccessOutcome.WeakExchangeRefused);
                    }

                    var offset = 1;
                    if (!MySqlWire.TryReadNullTerminated(payload, ref offset, out plugin))
                    {
                        throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server sent a malformed authentication switch", AccessOutcome.UpstreamFailed);
                    }

                    nonce = payload[offset..];
                    if (nonce.Length > 0 && nonce[^1] == 0 && plugin != MySqlWire.Ed25519)
                    {
                        nonce = nonce[..^1];
                    }

                    awaitingKey = false;
                    var answer = plugin switch
                    {
                        MySqlWire.NativePassword or MySqlWire.CachingSha2Password or MySqlWire.Ed25519 => await RespondAsync(plugin, password, nonce).ConfigureAwait(false),
                        MySqlWire.ClearPassword => Cleartext(plugin, password, options),
                        MySqlWire.Sha256Password => null,
                        _ => throw new MySqlProtocolException(MySqlWire.ErNotSupportedAuthMode, "08004", "the database server asked for the authentication method '" + Truncate(plugin) + "', which the proxy does not support", AccessOutcome.LoginFailed),
                    };
                    if (answer is null)
                    {
                        // sha256_password: the password over verified TLS, else RSA.
                        (answer, awaitingKey) = FullAuthentication(password, nonce, options, Sha256RequestPublicKey, plugin);
                    }

                    await WriteAsync(server, MySqlWire.Packet(next, answer), cancellationToken).ConfigureAwait(false);
                    continue;

                case MySqlWire.AuthMoreDataHeader:
                    var data = payload.AsSpan(1);
                    if (awaitingKey)
                    {
                        awaitingKey = false;
                        await WriteAsync(server, MySqlWire.Packet(next, Encrypt(password, nonce, Encoding.ASCII.GetString(data))), cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    if (plugin == MySqlWire.CachingSha2Password && data.Length == 1 && data[0] == FastAuthSuccess)
                    {
                        // The OK follows.
                        continue;
                    }

                    if (plugin == MySqlWire.CachingSha2Password && data.Length == 1 && data[0] == PerformFullAuthentication)
                    {
                        byte[] full;
                        (full, awaitingKey) = FullAuthentication(password, nonce, options, CachingSha2RequestPublicKey, plugin);
                        await WriteAsync(server, MySqlWire.Packet(next, full), cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server sent unexpected authentication data for " + Truncate(plugin), AccessOutcome.UpstreamFailed);

                default:
                    throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server sent an unexpected packet (0x" + payload[0].ToString("X2", System.Globalization.CultureInfo.InvariantCulture) + ") during the login", AccessOutcome.UpstreamFailed);
            }
        }

        throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server did not finish the login within " + MaxRounds + " exchanges", AccessOutcome.UpstreamFailed);
    }

    /// <summary>An ERR packet from the server, as the exception that carries its code, state and words to the app.</summary>
    public static MySqlProtocolException ServerError(ReadOnlySpan<byte> payload)
    {
        ushort code = MySqlWire.ErAccessDenied;
        var state = "28000";
        var message = "the database server refused the login";
        if (payload.Length >= 3)
        {
            code = BinaryPrimitives.ReadUInt16LittleEndian(payload[1..]);
            var text = payload[3..];
            if (text.Length >= 6 && text[0] == (byte)'#')
            {
                state = Encoding.ASCII.GetString(text.Slice(1, 5));
                text = text[6..];
            }
            else
            {
                state = "HY000";
            }

            message = Encoding.UTF8.GetString(text);
        }

        // 1045 access denied, 1698 (MySQL) access denied without a password, 1251/1862/1820 the
        // account cannot log in as it is: the credential is at fault. Anything else (unknown
        // database, too many connections) is the server refusing this session.
        var outcome = code is MySqlWire.ErAccessDenied or 1698 or 1251 or 1862 or 1820 ? AccessOutcome.LoginFailed : AccessOutcome.SessionRefused;
        return new MySqlProtocolException(code, state, message, outcome);
    }

    /// <summary>
    /// The proof for a challenge-response method. The ed25519 signature (milliseconds of BigInteger
    /// arithmetic) runs on the thread pool: with inline socket completions this code may be on the
    /// socket engine's thread, which must not stall every other connection's I/O.
    /// </summary>
    private static ValueTask<byte[]> RespondAsync(string plugin, string password, byte[] nonce) => plugin switch
    {
        MySqlWire.CachingSha2Password => ValueTask.FromResult(MySqlScramble.CachingSha2(password, nonce)),
        MySqlWire.Ed25519 => new ValueTask<byte[]>(Task.Run(() => MySqlScramble.Ed25519(password, nonce))),
        _ => ValueTask.FromResult(MySqlScramble.Native(password, nonce)),
    };

    private static byte[] Cleartext(string plugin, string password, MySqlLoginOptions options)
    {
        if (!options.Verified)
        {
            throw new MySqlProtocolException(MySqlWire.ErNotSupportedAuthMode, "08004", "the database server asked for the password in cleartext (" + plugin + "), and " + options.UnverifiedBecause, AccessOutcome.WeakExchangeRefused);
        }

        return MySqlScramble.Cleartext(password);
    }

    /// <summary>
    /// caching_sha2_password's full authentication and sha256_password: over verified TLS the
    /// password; otherwise RSA under the pinned key, or a key request when retrieval is allowed.
    /// </summary>
    private static (byte[] Packet, bool AwaitingKey) FullAuthentication(string password, ReadOnlySpan<byte> nonce, MySqlLoginOptions options, byte requestKey, string plugin)
    {
        if (options.Verified)
        {
            return (MySqlScramble.Cleartext(password), false);
        }

        if (options.ServerPublicKeyPem is { } pinned)
        {
            return (Encrypt(password, nonce, pinned), false);
        }

        if (options.AllowPublicKeyRetrieval)
        {
            return ([requestKey], true);
        }

        throw new MySqlProtocolException(MySqlWire.ErNotSupportedAuthMode, "08004",
            "the database server asked for " + plugin + " full authentication, which sends the password, and " + options.UnverifiedBecause
            + "; use Tls Mode VerifyFull, or pin the server's RSA key (MySql:ServerPublicKeyFile) or allow its retrieval (MySql:AllowPublicKeyRetrieval)",
            AccessOutcome.WeakExchangeRefused);
    }

    private static byte[] Encrypt(string password, ReadOnlySpan<byte> nonce, string pem)
    {
        try
        {
            return MySqlScramble.RsaEncrypted(password, nonce, pem);
        }
        catch (Exception ex) when (ex is ArgumentException or System.Security.Cryptography.CryptographicException)
        {
            throw new MySqlProtocolException(MySqlWire.ErNetReadError, "08S01", "the database server's RSA public key is not usable (" + ex.GetType().Name + ")", AccessOutcome.UpstreamFailed);
        }
    }

    private static async Task WriteAsync(Stream server, byte[] packet, CancellationToken cancellationToken)
    {
        await server.WriteAsync(packet, cancellationToken).ConfigureAwait(false);
        await server.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "...";
}
