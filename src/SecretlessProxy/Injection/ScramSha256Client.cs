using System.Security.Cryptography;
using System.Text;

namespace SecretlessProxy.Injection;

/// <summary>
/// The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: the user name in
/// the SCRAM messages is empty (the startup message carries it), and with TLS the server may offer
/// SCRAM-SHA-256-PLUS, bound to the channel by <c>tls-server-end-point</c> (RFC 5929 section 4).
/// One instance per login attempt.
/// </summary>
internal sealed class ScramSha256Client
{
    public const string Mechanism = "SCRAM-SHA-256";
    public const string MechanismPlus = "SCRAM-SHA-256-PLUS";

    private readonly string _clientNonce;
    private readonly string _gs2Header;
    private readonly byte[]? _channelBinding;
    private byte[]? _expectedServerSignature;

    /// <param name="channelBinding">The tls-server-end-point hash of the server's certificate, to use -PLUS; null otherwise.</param>
    /// <param name="tlsInUse">Whether the connection to the server is TLS (so the proxy could bind to it).</param>
    /// <param name="serverOffersPlus">Whether the server offered -PLUS.</param>
    public ScramSha256Client(byte[]? channelBinding, bool tlsInUse, bool serverOffersPlus)
    {
        _channelBinding = channelBinding;
        // RFC 5802 section 6: "y" tells a server that offered no binding over TLS that we could have
        // bound (its downgrade check); "n" that we do not bind at all.
        _gs2Header = channelBinding is not null ? "p=tls-server-end-point,," : tlsInUse && !serverOffersPlus ? "y,," : "n,,";
        _clientNonce = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));
    }

    public string MechanismName => _channelBinding is null ? Mechanism : MechanismPlus;

    private string ClientFirstBare => "n=,r=" + _clientNonce;

    public byte[] ClientFirstMessage() => Encoding.ASCII.GetBytes(_gs2Header + ClientFirstBare);

    /// <summary>Answers the server-first message with the client-final message (the proof).</summary>
    /// <exception cref="FormatException">The server's message is malformed or its nonce does not extend ours.</exception>
    public async ValueTask<byte[]> ClientFinalMessageAsync(string serverFirst, string password, SaltedPasswordCache cache)
    {
        string? nonce = null;
        string? salt = null;
        var iterations = 0;
        foreach (var attribute in serverFirst.Split(','))
        {
            if (attribute.StartsWith("r=", StringComparison.Ordinal))
            {
                nonce = attribute[2..];
            }
            else if (attribute.StartsWith("s=", StringComparison.Ordinal))
            {
                salt = attribute[2..];
            }
            else if (attribute.StartsWith("i=", StringComparison.Ordinal) && !int.TryParse(attribute.AsSpan(2), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out iterations))
            {
                throw new FormatException("the server's SCRAM iteration count is not a number");
            }
            else if (attribute.StartsWith("m=", StringComparison.Ordinal))
            {
                throw new FormatException("the server asked for a SCRAM extension the proxy does not support");
            }
        }

        if (nonce is null || salt is null || iterations <= 0)
        {
            throw new FormatException("the server's SCRAM challenge lacks a nonce, salt or iteration count");
        }

        // RFC 5802 section 5.1: the server nonce must start with the client's, or this is not an answer to us.
        if (!nonce.StartsWith(_clientNonce, StringComparison.Ordinal) || nonce.Length == _clientNonce.Length)
        {
            throw new FormatException("the server's SCRAM nonce does not extend the proxy's");
        }

        // RFC 4096 iterations is PostgreSQL's default; a server demanding absurd work would stall the
        // proxy for every login (a hostile or misconfigured server), so cap it.
        if (iterations > 1_000_000)
        {
            throw new FormatException("the server asked for " + iterations + " SCRAM iterations; the proxy allows at most 1000000");
        }

        var saltBytes = Convert.FromBase64String(salt);
        var saltedPassword = cache.TryGet(password, saltBytes, iterations)
            // A miss costs thousands of PBKDF2 rounds: off the I/O thread, which (with inline
            // completions) also carries every other spliced connection.
            ?? await Task.Run(() => cache.Compute(password, saltBytes, iterations)).ConfigureAwait(false);

        var cbindInput = _channelBinding is null
            ? Encoding.ASCII.GetBytes(_gs2Header)
            : [.. Encoding.ASCII.GetBytes(_gs2Header), .. _channelBinding];
        var clientFinalWithoutProof = "c=" + Convert.ToBase64String(cbindInput) + ",r=" + nonce;
        var authMessage = Encoding.UTF8.GetBytes(ClientFirstBare + "," + serverFirst + "," + clientFinalWithoutProof);

        var clientKey = HMACSHA256.HashData(saltedPassword, "Client Key"u8);
        var storedKey = SHA256.HashData(clientKey);
        var clientSignature = HMACSHA256.HashData(storedKey, authMessage);
        var proof = new byte[clientKey.Length];
        for (var i = 0; i < proof.Length; i++)
        {
            proof[i] = (byte)(clientKey[i] ^ clientSignature[i]);
        }

        var serverKey = HMACSHA256.HashData(saltedPassword, "Server Key"u8);
        _expectedServerSignature = HMACSHA256.HashData(serverKey, authMessage);
        CryptographicOperations.ZeroMemory(clientKey);
        return Encoding.ASCII.GetBytes(clientFinalWithoutProof + ",p=" + Convert.ToBase64String(proof));
    }

    /// <summary>
    /// True when the server's final message proves it knows the password's verifier (RFC 5802
    /// section 3): a server that cannot sign is an impostor, even if it then says "OK".
    /// </summary>
    public bool VerifyServerFinal(string serverFinal, out string? serverError)
    {
        serverError = null;
        if (serverFinal.StartsWith("e=", StringComparison.Ordinal))
        {
            serverError = serverFinal[2..];
            return false;
        }

        if (_expectedServerSignature is null || !serverFinal.StartsWith("v=", StringComparison.Ordinal))
        {
            return false;
        }

        var end = serverFinal.IndexOf(',');
        var text = end < 0 ? serverFinal[2..] : serverFinal[2..end];
        var signature = new byte[32];
        return Convert.TryFromBase64String(text, signature, out var written) && written == 32 &&
               CryptographicOperations.FixedTimeEquals(signature, _expectedServerSignature);
    }
}
