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

    /// <summary>
    /// PostgreSQL's default (scram_iterations) and RFC 7677's minimum. Fewer, from a server whose
    /// certificate is not verified, would let whoever answers crack the proof offline at a few
    /// PBKDF2 rounds a guess (with i=1 and a salt of its choosing, a precomputed table).
    /// </summary>
    public const int MinimumIterationsFromUnverifiedServer = 4096;

    /// <summary>
    /// A miss computes this many PBKDF2-HMAC-SHA-256 rounds (about 0.3 s of CPU at a million): a
    /// hostile or misconfigured server demanding more would stall the proxy at every login.
    /// </summary>
    public const int MaximumIterations = 1_000_000;

    private const int MaxSaltBytes = 1024;

    private readonly string _clientNonce;
    private readonly string _userName;
    private readonly string _gs2Header;
    private readonly byte[]? _channelBinding;
    private byte[]? _expectedServerSignature;
    private SaltedPasswordCache? _unprovenCache;
    private SaltedPasswordCache.Entry? _unproven;

    /// <param name="channelBinding">The tls-server-end-point hash of the server's certificate, to use -PLUS; null otherwise.</param>
    /// <param name="tlsInUse">Whether the connection to the server is TLS (so the proxy could bind to it).</param>
    /// <param name="serverOffersPlus">Whether the server offered -PLUS.</param>
    public ScramSha256Client(byte[]? channelBinding, bool tlsInUse, bool serverOffersPlus)
        : this(channelBinding, tlsInUse, serverOffersPlus, Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)), userName: string.Empty)
    {
    }

    /// <summary>
    /// With a chosen client nonce and SCRAM user name, so that the published test vectors (RFC 7677
    /// section 3 names user "user") can be replayed; logins use the random nonce and PostgreSQL's empty name.
    /// </summary>
    internal ScramSha256Client(byte[]? channelBinding, bool tlsInUse, bool serverOffersPlus, string clientNonce, string userName)
    {
        _channelBinding = channelBinding;
        // RFC 5802 section 6: "y" tells a server that offered no binding over TLS that we could have
        // bound (its downgrade check); "n" that we do not bind at all.
        _gs2Header = channelBinding is not null ? "p=tls-server-end-point,," : tlsInUse && !serverOffersPlus ? "y,," : "n,,";
        _clientNonce = clientNonce;
        // RFC 5802 section 5.1: '=' and ',' in a saslname are written =3D and =2C.
        _userName = userName.Replace("=", "=3D", StringComparison.Ordinal).Replace(",", "=2C", StringComparison.Ordinal);
    }

    public string MechanismName => _channelBinding is null ? Mechanism : MechanismPlus;

    private string ClientFirstBare => "n=" + _userName + ",r=" + _clientNonce;

    public byte[] ClientFirstMessage() => Encoding.ASCII.GetBytes(_gs2Header + ClientFirstBare);

    /// <summary>
    /// Parses and checks the server-first message (RFC 5802 section 5.1). Whether its iteration
    /// count is acceptable is the caller's decision (it depends on whether the server is verified);
    /// see <see cref="MinimumIterationsFromUnverifiedServer"/> and <see cref="MaximumIterations"/>.
    /// </summary>
    /// <exception cref="FormatException">The message is malformed or its nonce does not extend ours.</exception>
    public ScramServerFirst ReadServerFirst(string serverFirst)
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
                throw new FormatException("the server's SCRAM iteration count is not a number (or is beyond any the proxy computes)");
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

        // PostgreSQL's salt is 16 bytes; a larger one only costs memory in the salted-password cache.
        var saltBytes = new byte[MaxSaltBytes];
        if (!Convert.TryFromBase64String(salt, saltBytes, out var saltLength) || saltLength == 0)
        {
            throw new FormatException("the server's SCRAM salt is not base64 of 1 to " + MaxSaltBytes + " bytes");
        }

        return new ScramServerFirst(serverFirst, nonce, saltBytes[..saltLength], iterations);
    }

    /// <summary>
    /// Answers the server-first message with the client-final message (the proof). The derived
    /// SaltedPassword is remembered in <paramref name="cache"/> only once the server's final
    /// message proves it holds the verifier (<see cref="VerifyServerFinal"/>), so a server that
    /// cannot (an impostor under Tls Require) cannot replace the cached entry.
    /// </summary>
    public async ValueTask<byte[]> ClientFinalMessageAsync(ScramServerFirst first, string password, SaltedPasswordCache cache)
    {
        // Defence in depth: the caller has already refused a count beyond this.
        if (first.Iterations > MaximumIterations)
        {
            throw new FormatException("the server asked for " + first.Iterations + " SCRAM iterations; the proxy computes at most " + MaximumIterations);
        }

        var serverFirst = first.Message;
        var nonce = first.Nonce;
        var saltBytes = first.Salt;
        var iterations = first.Iterations;
        var saltedPassword = cache.TryGet(password, saltBytes, iterations);
        if (saltedPassword is null)
        {
            // A miss costs thousands of PBKDF2 rounds: off the I/O thread, which (with inline
            // completions) also carries every other spliced connection.
            _unproven = await Task.Run(() => SaltedPasswordCache.Derive(password, saltBytes, iterations)).ConfigureAwait(false);
            _unprovenCache = cache;
            saltedPassword = _unproven.SaltedPassword;
        }

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
        if (!Convert.TryFromBase64String(text, signature, out var written) || written != 32 ||
            !CryptographicOperations.FixedTimeEquals(signature, _expectedServerSignature))
        {
            return false;
        }

        // Proven: this salt and count are the server's own for the role, worth remembering.
        if (_unproven is not null)
        {
            _unprovenCache?.Remember(_unproven);
            _unproven = null;
        }

        return true;
    }
}
