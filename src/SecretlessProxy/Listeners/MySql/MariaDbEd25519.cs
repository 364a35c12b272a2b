using System.Numerics;
using System.Security.Cryptography;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// MariaDB's <c>client_ed25519</c> response: an Ed25519 signature (RFC 8032, section 5.1.6) of the
/// server's 32-byte nonce, with the password itself taking the place of the 32-byte seed:
/// SHA-512(password) gives the clamped scalar and the nonce prefix (MariaDB docs, "Authentication
/// Plugin - ed25519"). With a 32-byte password this is exactly RFC 8032 signing, which the tests check
/// against the RFC's vectors.
/// </summary>
/// <remarks>
/// Why hand-written: .NET has no Ed25519, and the packages that do (NSec, BouncyCastle) take only a
/// 32-byte seed and hash it themselves; the arbitrary-length seed needs the curve arithmetic, which
/// they keep internal. This is the textbook arithmetic on <see cref="BigInteger"/> (extended twisted
/// Edwards coordinates, a uniform double-and-add ladder), about a millisecond per login. BigInteger
/// is not constant-time: the timing of one login could in principle say something about the
/// password-derived scalar to a process on the same host measuring it; the proxy's own host is
/// trusted with the password anyway.
/// </remarks>
internal static class MariaDbEd25519
{
    private static readonly BigInteger P = BigInteger.Pow(2, 255) - 19;
    private static readonly BigInteger L = BigInteger.Pow(2, 252) + BigInteger.Parse("27742317777372353535851937790883648493", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly BigInteger D = Mod(-121665 * Inverse(121666));
    private static readonly BigInteger D2 = Mod(2 * D);
    private static readonly BigInteger BaseX = BigInteger.Parse("15112221349535400772501151409588531511454012693041857206046113283949847762202", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly BigInteger BaseY = Mod(4 * Inverse(5));
    private static readonly Point Base = new(BaseX, BaseY, BigInteger.One, Mod(BaseX * BaseY));
    private static readonly Point Identity = new(BigInteger.Zero, BigInteger.One, BigInteger.One, BigInteger.Zero);

    /// <summary>The 64-byte signature of <paramref name="message"/> with <paramref name="password"/> (UTF-8 bytes) as the seed.</summary>
    public static byte[] Sign(ReadOnlySpan<byte> message, ReadOnlySpan<byte> password)
    {
        var az = new byte[64];
        var nonceInput = new byte[32 + message.Length];
        try
        {
            SHA512.HashData(password, az);
            az[0] &= 248;
            az[31] &= 63;
            az[31] |= 64;
            var a = new BigInteger(az.AsSpan(0, 32), isUnsigned: true, isBigEndian: false);
            var publicKey = Encode(Multiply(Base, a));

            az.AsSpan(32).CopyTo(nonceInput);
            message.CopyTo(nonceInput.AsSpan(32));
            var r = Reduce(SHA512.HashData(nonceInput));
            var rPoint = Encode(Multiply(Base, r));

            var hramInput = new byte[64 + message.Length];
            rPoint.CopyTo(hramInput, 0);
            publicKey.CopyTo(hramInput, 32);
            message.CopyTo(hramInput.AsSpan(64));
            var k = Reduce(SHA512.HashData(hramInput));
            var s = (r + (k * a)) % L;

            var signature = new byte[64];
            rPoint.CopyTo(signature, 0);
            s.TryWriteBytes(signature.AsSpan(32), out _, isUnsigned: true, isBigEndian: false);
            return signature;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(az);
            CryptographicOperations.ZeroMemory(nonceInput);
        }
    }

    /// <summary>Whether a point's coordinates satisfy -x^2 + y^2 = 1 + d x^2 y^2 (for the tests: the base point is right).</summary>
    internal static bool BaseIsOnCurve()
    {
        var x2 = Mod(BaseX * BaseX);
        var y2 = Mod(BaseY * BaseY);
        return Mod(y2 - x2) == Mod(1 + (D * x2 * y2));
    }

    private static BigInteger Reduce(ReadOnlySpan<byte> hash) => new BigInteger(hash, isUnsigned: true, isBigEndian: false) % L;

    /// <summary>k·p by a ladder that does one addition and one doubling per bit, whatever the bit.</summary>
    private static Point Multiply(Point p, BigInteger k)
    {
        var r0 = Identity;
        var r1 = p;
        for (var i = 255; i >= 0; i--)
        {
            if (((k >> i) & 1) == 0)
            {
                r1 = Add(r0, r1);
                r0 = Add(r0, r0);
            }
            else
            {
                r0 = Add(r0, r1);
                r1 = Add(r1, r1);
            }
        }

        return r0;
    }

    /// <summary>The unified addition of RFC 8032, section 5.1.4 (a = -1; also right for doubling).</summary>
    private static Point Add(Point p, Point q)
    {
        var a = Mod((p.Y - p.X) * (q.Y - q.X));
        var b = Mod((p.Y + p.X) * (q.Y + q.X));
        var c = Mod(p.T * D2 * q.T);
        var d = Mod(2 * p.Z * q.Z);
        var e = b - a;
        var f = d - c;
        var g = d + c;
        var h = b + a;
        return new Point(Mod(e * f), Mod(g * h), Mod(f * g), Mod(e * h));
    }

    /// <summary>RFC 8032, section 5.1.2: y little-endian, the low bit of x in the top bit.</summary>
    private static byte[] Encode(Point p)
    {
        var zInverse = Inverse(p.Z);
        var x = Mod(p.X * zInverse);
        var y = Mod(p.Y * zInverse);
        var bytes = new byte[32];
        y.TryWriteBytes(bytes, out _, isUnsigned: true, isBigEndian: false);
        if (!x.IsEven)
        {
            bytes[31] |= 0x80;
        }

        return bytes;
    }

    private static BigInteger Mod(BigInteger value)
    {
        var r = value % P;
        return r.Sign < 0 ? r + P : r;
    }

    private static BigInteger Inverse(BigInteger value) => BigInteger.ModPow(Mod(value), P - 2, P);

    private readonly record struct Point(BigInteger X, BigInteger Y, BigInteger Z, BigInteger T);
}
