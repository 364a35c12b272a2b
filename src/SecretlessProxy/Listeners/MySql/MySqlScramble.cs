using System.Security.Cryptography;
using System.Text;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// The password proofs of the MySQL methods (MySQL docs, "Native Authentication",
/// "Caching_sha2_password information", "sha256_password"). Each takes the server's nonce; the
/// results go only into the login packets.
/// </summary>
internal static class MySqlScramble
{
    /// <summary>mysql_native_password: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))); empty for an empty password.</summary>
    public static byte[] Native(string password, ReadOnlySpan<byte> nonce)
    {
        if (password.Length == 0)
        {
            return [];
        }

        var stage1 = SHA1.HashData(Encoding.UTF8.GetBytes(password));
        var stage2 = SHA1.HashData(stage1);
        var input = new byte[20 + stage2.Length];
        nonce[..Math.Min(20, nonce.Length)].CopyTo(input);
        stage2.CopyTo(input, 20);
        var mask = SHA1.HashData(input);
        for (var i = 0; i < stage1.Length; i++)
        {
            stage1[i] ^= mask[i];
        }

        return stage1;
    }

    /// <summary>caching_sha2_password's fast path: SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce); empty for an empty password.</summary>
    public static byte[] CachingSha2(string password, ReadOnlySpan<byte> nonce)
    {
        if (password.Length == 0)
        {
            return [];
        }

        var digest1 = SHA256.HashData(Encoding.UTF8.GetBytes(password));
        var digest2 = SHA256.HashData(digest1);
        var input = new byte[digest2.Length + Math.Min(20, nonce.Length)];
        digest2.CopyTo(input, 0);
        nonce[..Math.Min(20, nonce.Length)].CopyTo(input.AsSpan(digest2.Length));
        var digest3 = SHA256.HashData(input);
        for (var i = 0; i < digest1.Length; i++)
        {
            digest1[i] ^= digest3[i];
        }

        return digest1;
    }

    /// <summary>The password and a NUL, for full authentication over TLS only.</summary>
    public static byte[] Cleartext(string password)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(password) + 1];
        Encoding.UTF8.GetBytes(password, bytes);
        return bytes;
    }

    /// <summary>
    /// Full authentication without TLS: (password + NUL) XOR the nonce (repeated), RSA-OAEP
    /// (SHA-1, as the server decrypts with RSA_PKCS1_OAEP_PADDING) under the server's public key.
    /// </summary>
    public static byte[] RsaEncrypted(string password, ReadOnlySpan<byte> nonce, string publicKeyPem)
    {
        var plain = Cleartext(password);
        try
        {
            var salt = nonce[..Math.Min(20, nonce.Length)];
            for (var i = 0; i < plain.Length; i++)
            {
                plain[i] ^= salt[i % salt.Length];
            }

            using var rsa = RSA.Create();
            rsa.ImportFromPem(publicKeyPem);
            return rsa.Encrypt(plain, RSAEncryptionPadding.OaepSHA1);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <summary>client_ed25519: the 64-byte signature of the 32-byte nonce with the password as the seed.</summary>
    public static byte[] Ed25519(string password, ReadOnlySpan<byte> nonce) =>
        MariaDbEd25519.Sign(nonce[..Math.Min(32, nonce.Length)], Encoding.UTF8.GetBytes(password));
}
