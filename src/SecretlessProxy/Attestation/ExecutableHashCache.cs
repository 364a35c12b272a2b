using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace SecretlessProxy.Attestation;

/// <summary>
/// SHA-256 of the executable a process is running, hashed once per distinct file. The bytes are
/// read through <c>/proc/&lt;pid&gt;/exe</c>, which opens the inode the process actually runs even
/// when its path has since been replaced or deleted.
/// </summary>
/// <remarks>
/// The cache key is the file's identity and version as the kernel reports them for the open file
/// (device, inode, size, mtime, ctime), not its path: two paths to one inode share a hash, a copy
/// is a new inode and is hashed, and a binary rewritten in place changes ctime, which, unlike
/// mtime, its owner cannot set back. Thread-safe; two connections from a new binary at the same
/// instant may both hash it, which is harmless.
/// </remarks>
internal sealed class ExecutableHashCache
{
    // Bounded so that a host that keeps producing new binaries cannot grow it without limit;
    // when full it starts again, which costs one re-hash per binary in use.
    private const int MaxEntries = 4096;
    private const int ReadSize = 128 * 1024;

    private readonly ConcurrentDictionary<ProcFs.FileStatus, string> _hashes = new();
    private long _hashesComputed;

    /// <summary>How many times a file was actually read and hashed (cache misses). For tests.</summary>
    internal long HashesComputed => Interlocked.Read(ref _hashesComputed);

    /// <summary>
    /// Lower-case hex SHA-256 of the file <paramref name="path"/> opens (for <c>/proc/&lt;pid&gt;/exe</c>:
    /// the running executable), or null when it cannot be read (the process exited, no permission,
    /// an execute-only binary). <paramref name="hashed"/> is what fstat said of the file hashed, so
    /// that a caller can tell whether it is the file it described (an exec(2) in between changes it).
    /// </summary>
    public string? GetSha256(string path, out ProcFs.FileStatus hashed)
    {
        hashed = default;
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        using (file)
        {
            if (!ProcFs.TryStat(file, out var before))
            {
                return null;
            }

            hashed = before;

            if (_hashes.TryGetValue(before, out var cached))
            {
                return cached;
            }

            var hash = Hash(file);
            Interlocked.Increment(ref _hashesComputed);

            // Cache only what was stable while it was read: a file written meanwhile gets this
            // (possibly torn) hash for this connection only.
            if (hash is not null && ProcFs.TryStat(file, out var after) && after == before)
            {
                if (_hashes.Count >= MaxEntries)
                {
                    _hashes.Clear();
                }

                _hashes[before] = hash;
            }

            return hash;
        }
    }

    private static string? Hash(SafeFileHandle file)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ReadSize);
        try
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long offset = 0;
            int read;
            while ((read = RandomAccess.Read(file, buffer.AsSpan(0, ReadSize), offset)) > 0)
            {
                sha.AppendData(buffer, 0, read);
                offset += read;
            }

            return Convert.ToHexStringLower(sha.GetHashAndReset());
        }
        catch (IOException)
        {
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
