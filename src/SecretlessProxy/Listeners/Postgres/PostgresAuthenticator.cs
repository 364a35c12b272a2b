using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using SecretlessProxy.Core;
using SecretlessProxy.Injection;

using SecretlessProxy.Listeners.Database;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// Logs in to a PostgreSQL server with the credential's user name and password, by whichever method
/// the server asks for (PostgreSQL docs, "Message Flow: Start-up"): SCRAM-SHA-256 (-PLUS over TLS,
/// verifying the server's signature), MD5, or cleartext. The password goes only into the messages
/// the method requires; no error raised here carries it.
/// </summary>
/// <remarks>
/// No weakened exchange with a server that is not verified (Tls Mode Require or Disable): whoever
/// answers there could be an impostor choosing the method, so it gets SCRAM with at least
/// <see cref="ScramSha256Client.MinimumIterationsFromUnverifiedServer"/> iterations or nothing:
/// never the cleartext password, never an MD5 response to a salt of its choosing (one MD5 per
/// guess offline), never a SCRAM proof at i=1. MySQL and Redis logins, when they come, follow the
/// same rule.
/// </remarks>
internal static class PostgresAuthenticator
{
    private const int AuthOk = 0;
    private const int AuthCleartext = 3;
    private const int AuthMd5 = 5;
    private const int AuthSasl = 10;
    private const int AuthSaslContinue = 11;
    private const int AuthSaslFinal = 12;

    /// <summary>Runs the authentication exchange up to AuthenticationOk and returns the method used (for spans).</summary>
    /// <exception cref="PostgresProtocolException">The server refused the login, asked for an unsupported method, or misbehaved.</exception>
    public static async Task<string> AuthenticateAsync(Stream server, PostgresBackendReader reader, string user, string password, X509Certificate? serverCertificate, DatabaseTlsMode tlsMode, SaltedPasswordCache cache, CancellationToken cancellationToken)
    {
        var tls = serverCertificate is not null;
        // The server picks the method. Without a verified server (Require: any certificate; Disable:
        // no TLS at all) whoever answers could ask for the password in cleartext, for an MD5
        // response to a salt of its choosing, or for a SCRAM proof at one iteration; only a
        // verified server gets any of those.
        var verified = tls && tlsMode == DatabaseTlsMode.VerifyFull;
        var unverifiedBecause = tls ? "its certificate is not verified (Tls Mode Require)" : "the connection has no TLS (Tls Mode Disable)";
        ScramSha256Client? scram = null;
        var scramVerified = false;
        var method = "trust";
        while (true)
        {
            var message = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            switch (message.Type)
            {
                case PostgresWire.ErrorResponseType:
                    var fields = PostgresWire.ReadFields(message.Payload);
                    throw new PostgresProtocolException(
                        fields.GetValueOrDefault('C', "28000"),
                        fields.GetValueOrDefault('M', "the database server refused the login"),
                        AccessOutcome.LoginFailed);
                case PostgresWire.NoticeResponseType or PostgresWire.NegotiateProtocolVersionType:
                    // The proxy asks for plain 3.0 with no options, so a version answer changes nothing.
                    continue;
                case PostgresWire.AuthenticationType when message.Payload.Length >= 4:
                    break;
                default:
                    throw new PostgresProtocolException("08P01", "the database server sent message '" + (char)message.Type + "' before authentication completed");
            }

            var payload = message.Payload;
            var request = BinaryPrimitives.ReadInt32BigEndian(payload);
            switch (request)
            {
                case AuthOk:
                    // A server (or someone in between) that skips SCRAM's last step has not proved it
                    // knows the password's verifier; do not hand it the app's session.
                    if (scram is not null && !scramVerified)
                    {
                        throw new PostgresProtocolException("28000", "the database server ended SCRAM authentication without proving its identity", AccessOutcome.LoginFailed);
                    }

                    return method;

                case AuthCleartext or AuthMd5 when scram is not null:
                    throw new PostgresProtocolException("28000", "the database server switched from SCRAM to another authentication method mid-login; the proxy refuses", AccessOutcome.LoginFailed);

                case AuthCleartext:
                    if (!verified)
                    {
                        throw new PostgresProtocolException("28000", tls
                            ? "the database server asked for the password in cleartext, and its certificate is not verified (Tls Mode Require); the proxy refuses (use VerifyFull, or scram-sha-256 in pg_hba.conf)"
                            : "the database server asked for the password in cleartext over a connection without TLS; the proxy refuses (use Tls Mode VerifyFull, or scram-sha-256 in pg_hba.conf)", AccessOutcome.WeakExchangeRefused);
                    }

                    method = "password";
                    await SendAsync(server, PasswordMessage(Encoding.UTF8.GetBytes(password)), cancellationToken).ConfigureAwait(false);
                    break;

                case AuthMd5 when payload.Length >= 8:
                    if (!verified)
                    {
                        // An MD5 response to a salt the server chose is one MD5 per guess offline.
                        throw new PostgresProtocolException("28000", tls
                            ? "the database server asked for an MD5 response, and its certificate is not verified (Tls Mode Require); the proxy refuses (use VerifyFull, or scram-sha-256 in pg_hba.conf)"
                            : "the database server asked for an MD5 response over a connection without TLS; the proxy refuses (use Tls Mode VerifyFull, or scram-sha-256 in pg_hba.conf)", AccessOutcome.WeakExchangeRefused);
                    }

                    method = "md5";
                    await SendAsync(server, PasswordMessage(Md5Response(user, password, payload.Slice(4, 4))), cancellationToken).ConfigureAwait(false);
                    break;

                case AuthSasl when scram is not null:
                    throw new PostgresProtocolException("08P01", "the database server started SASL twice", AccessOutcome.LoginFailed);

                case AuthSasl:
                    var mechanisms = ReadMechanisms(payload[4..]);
                    var binding = serverCertificate is not null && mechanisms.Contains(ScramSha256Client.MechanismPlus) ? TlsServerEndPoint(serverCertificate) : null;
                    if (binding is null && !mechanisms.Contains(ScramSha256Client.Mechanism))
                    {
                        throw new PostgresProtocolException("28000", "the database server offers SASL mechanisms " + string.Join(", ", mechanisms) + "; the proxy supports SCRAM-SHA-256", AccessOutcome.LoginFailed);
                    }

                    scram = new ScramSha256Client(binding, tls, mechanisms.Contains(ScramSha256Client.MechanismPlus));
                    method = scram.MechanismName.ToLowerInvariant();
                    await SendAsync(server, SaslInitialResponse(scram.MechanismName, scram.ClientFirstMessage()), cancellationToken).ConfigureAwait(false);
                    break;

                case AuthSaslContinue when scram is not null:
                    ScramServerFirst first;
                    try
                    {
                        first = scram.ReadServerFirst(Encoding.UTF8.GetString(message.Payload[4..]));
                    }
                    catch (FormatException ex)
                    {
                        throw new PostgresProtocolException("08P01", "SCRAM with the database server failed: " + ex.Message, AccessOutcome.LoginFailed);
                    }

                    if (first.Iterations > ScramSha256Client.MaximumIterations)
                    {
                        throw new PostgresProtocolException("28000", "the database server asked for SCRAM with " + first.Iterations + " iterations; the proxy computes at most " + ScramSha256Client.MaximumIterations + " (each login would cost it seconds of CPU)", AccessOutcome.ExcessiveWorkRefused);
                    }

                    if (!verified && first.Iterations < ScramSha256Client.MinimumIterationsFromUnverifiedServer)
                    {
                        // RFC 7677 section 4: at least 4096. The count is the server's to choose, so
                        // from a server nobody vouches for a low one is an offline-cracking request.
                        throw new PostgresProtocolException("28000", "the database server asked for SCRAM with " + first.Iterations + " iterations, and " + unverifiedBecause + "; the proxy refuses fewer than " + ScramSha256Client.MinimumIterationsFromUnverifiedServer + " from a server it cannot verify, whose answer could be cracked offline (use Tls Mode VerifyFull, or raise the role's iteration count: scram_iterations, then set the password again)", AccessOutcome.WeakExchangeRefused);
                    }

                    byte[] final;
                    try
                    {
                        final = await scram.ClientFinalMessageAsync(first, password, cache).ConfigureAwait(false);
                    }
                    catch (FormatException ex)
                    {
                        throw new PostgresProtocolException("08P01", "SCRAM with the database server failed: " + ex.Message, AccessOutcome.LoginFailed);
                    }

                    await SendAsync(server, PasswordMessage(final, terminate: false), cancellationToken).ConfigureAwait(false);
                    break;

                case AuthSaslFinal when scram is not null:
                    if (!scram.VerifyServerFinal(Encoding.UTF8.GetString(payload[4..]), out var serverError))
                    {
                        throw new PostgresProtocolException("28000", serverError is null
                            ? "the database server's SCRAM signature did not verify: it does not hold this user's verifier"
                            : "SCRAM with the database server failed: " + serverError, AccessOutcome.LoginFailed);
                    }

                    scramVerified = true;
                    break;

                default:
                    throw new PostgresProtocolException("28000", "the database server asked for authentication method " + request + " (Kerberos, GSSAPI or SSPI); the proxy supports SCRAM-SHA-256, MD5 and password", AccessOutcome.LoginFailed);
            }
        }
    }

    private static async Task SendAsync(Stream server, byte[] message, CancellationToken cancellationToken)
    {
        await server.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        await server.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private static byte[] PasswordMessage(ReadOnlySpan<byte> content, bool terminate = true)
    {
        var payload = new byte[content.Length + (terminate ? 1 : 0)];
        content.CopyTo(payload);
        return PostgresWire.Message(PostgresWire.PasswordMessageType, payload);
    }

    private static byte[] SaslInitialResponse(string mechanism, byte[] clientFirst)
    {
        var payload = new ArrayBufferWriter<byte>();
        PostgresWire.WriteCString(payload, mechanism);
        PostgresWire.WriteInt32(payload, clientFirst.Length);
        payload.Write(clientFirst);
        return PostgresWire.Message(PostgresWire.PasswordMessageType, payload.WrittenSpan);
    }

    /// <summary>"md5" + md5hex(md5hex(password + user) + salt), as libpq computes it.</summary>
    private static byte[] Md5Response(string user, string password, ReadOnlySpan<byte> salt)
    {
        var inner = Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(password + user)));
        var outerInput = new byte[inner.Length + 4];
        Encoding.ASCII.GetBytes(inner, outerInput);
        salt.CopyTo(outerInput.AsSpan(inner.Length));
        return Encoding.ASCII.GetBytes("md5" + Convert.ToHexStringLower(MD5.HashData(outerInput)));
    }

    private static List<string> ReadMechanisms(ReadOnlySpan<byte> payload)
    {
        var mechanisms = new List<string>();
        while (payload.Length > 0 && payload[0] != 0)
        {
            var end = payload.IndexOf((byte)0);
            if (end < 0)
            {
                break;
            }

            mechanisms.Add(Encoding.ASCII.GetString(payload[..end]));
            payload = payload[(end + 1)..];
        }

        return mechanisms;
    }

    /// <summary>
    /// RFC 5929 section 4.1: the hash of the server's certificate with its signature's hash
    /// algorithm, SHA-256 in place of MD5 and SHA-1.
    /// </summary>
    private static byte[] TlsServerEndPoint(X509Certificate certificate)
    {
        var raw = certificate.GetRawCertData();
        var algorithm = (certificate as X509Certificate2)?.SignatureAlgorithm.Value switch
        {
            "1.2.840.113549.1.1.12" or "1.2.840.10045.4.3.3" => HashAlgorithmName.SHA384,
            "1.2.840.113549.1.1.13" or "1.2.840.10045.4.3.4" => HashAlgorithmName.SHA512,
            _ => HashAlgorithmName.SHA256,
        };
        return algorithm == HashAlgorithmName.SHA384 ? SHA384.HashData(raw)
            : algorithm == HashAlgorithmName.SHA512 ? SHA512.HashData(raw)
            : SHA256.HashData(raw);
    }
}
