using System.Security.Cryptography;
using System.Text;

namespace SecretlessProxy.Injection;

/// <summary>
/// Remembers the last SCRAM SaltedPassword (PBKDF2 of the password) per login credential. A server
/// sends the same salt and iteration count for a role on every login, so a new connection costs one
/// HMAC round instead of 4096 PBKDF2 iterations: this is where the proxy beats a client that logs in
/// itself. A rotated password or a changed salt simply misses. Held in memory only, like the password.
/// </summary>
/// <remarks>
/// One entry per listener, so it cannot grow whatever salts a server sends, and an entry is only
/// remembered after the server proved with its SCRAM signature that it holds the role's verifier
/// (<see cref="ScramSha256Client.VerifyServerFinal"/>): a server that cannot, such as an impostor
/// answering under Tls Require, cannot displace the entry or plant one of its choosing. The salt is
/// at most 1 KB (<see cref="ScramSha256Client.ReadServerFirst"/>) and the count at most
/// <see cref="ScramSha256Client.MaximumIterations"/>.
/// </remarks>
internal sealed class SaltedPasswordCache
{
    private Entry? _last;

    /// <summary>The cached SaltedPassword for exactly this password, salt and iteration count, or null.</summary>
    public byte[]? TryGet(string password, byte[] salt, int iterations)
    {
        var last = Volatile.Read(ref _last);
        return last is not null && last.Iterations == iterations && string.Equals(last.Password, password, StringComparison.Ordinal) && last.Salt.AsSpan().SequenceEqual(salt)
            ? last.SaltedPassword
            : null;
    }

    /// <summary>Computes the SaltedPassword (PBKDF2-HMAC-SHA-256), to <see cref="Remember"/> once the server has proved itself.</summary>
    public static Entry Derive(string password, byte[] salt, int iterations) =>
        new(password, salt, iterations, Rfc2898DeriveBytes.Pbkdf2(Prepare(password), salt, iterations, HashAlgorithmName.SHA256, 32));

    public void Remember(Entry entry) => Volatile.Write(ref _last, entry);

    /// <summary>
    /// PostgreSQL applies SASLprep (RFC 4013) to the password and falls back to the raw bytes when
    /// that fails. For ASCII passwords (what generated credentials are) SASLprep is the identity;
    /// otherwise NFKC, SASLprep's normalisation step, is the close approximation used here.
    /// </summary>
    private static byte[] Prepare(string password)
    {
        foreach (var ch in password)
        {
            if (ch > 0x7E || ch < 0x20)
            {
                return Encoding.UTF8.GetBytes(password.Normalize(NormalizationForm.FormKC));
            }
        }

        return Encoding.UTF8.GetBytes(password);
    }

    /// <summary>A password, salt and count with their SaltedPassword.</summary>
    // A class, not a record: a record's generated ToString would print the password.
    internal sealed class Entry(string password, byte[] salt, int iterations, byte[] saltedPassword)
    {
        public string Password { get; } = password;

        public byte[] Salt { get; } = salt;

        public int Iterations { get; } = iterations;

        public byte[] SaltedPassword { get; } = saltedPassword;
    }
}
