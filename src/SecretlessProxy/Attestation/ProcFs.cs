using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace SecretlessProxy.Attestation;

/// <summary>
/// The two libc calls caller attestation needs and .NET does not expose: <c>statx</c> (the owner,
/// device and inode of a file) and <c>readlink</c> into a caller's buffer (no string per
/// <c>/proc/&lt;pid&gt;/fd/&lt;n&gt;</c> link examined). <c>statx</c> rather than <c>stat</c>:
/// its struct has one layout on every architecture, and glibc exports it since 2.28 (<c>stat</c>
/// became a real symbol only in 2.33).
/// </summary>
internal static unsafe partial class ProcFs
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;

    // STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_MTIME | STATX_CTIME | STATX_INO | STATX_SIZE (linux/stat.h).
    private const uint StatxMask = 0x1 | 0x2 | 0x8 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200;

    // sizeof(struct statx) is 256 bytes; the offsets below are fixed by the kernel ABI (linux/stat.h).
    private const int StatxSize = 256;

    /// <summary>
    /// What <c>statx</c> reports about a file: its identity (device, inode), what changes when its
    /// bytes change, and who may read it (owner, group, type and permission bits).
    /// </summary>
    internal readonly record struct FileStatus(uint Uid, ulong Device, ulong Inode, long Size, long MTimeSeconds, uint MTimeNanoseconds, long CTimeSeconds, uint CTimeNanoseconds, uint Gid = 0, ushort Mode = 0);

    /// <summary>stat (or lstat) of a path.</summary>
    public static bool TryStat(string path, bool followLinks, out FileStatus status)
    {
        byte* buffer = stackalloc byte[StatxSize];
        if (Statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxMask, buffer) != 0)
        {
            status = default;
            return false;
        }

        status = Read(buffer);
        return true;
    }

    /// <summary>fstat of an open file.</summary>
    public static bool TryStat(SafeFileHandle handle, out FileStatus status)
    {
        byte* buffer = stackalloc byte[StatxSize];
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            if (Statx((int)handle.DangerousGetHandle(), string.Empty, AtEmptyPath, StatxMask, buffer) != 0)
            {
                status = default;
                return false;
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }

        status = Read(buffer);
        return true;
    }

    /// <summary>
    /// readlink(2) of <paramref name="nulTerminatedPath"/> into <paramref name="destination"/>: the
    /// number of bytes written (not NUL-terminated), or -1 on failure (the link is gone, permission).
    /// </summary>
    public static int ReadLink(ReadOnlySpan<byte> nulTerminatedPath, Span<byte> destination)
    {
        fixed (byte* path = nulTerminatedPath)
        fixed (byte* buffer = destination)
        {
            return (int)ReadLinkNative(path, buffer, destination.Length);
        }
    }

    /// <summary>readlink(2) of a path, decoded as UTF-8; null on failure.</summary>
    public static string? ReadLink(string path)
    {
        const int PathMax = 4096;
        var pathBytes = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, pathBytes);
        Span<byte> target = stackalloc byte[PathMax];
        var length = ReadLink(pathBytes, target);
        return length < 0 ? null : Encoding.UTF8.GetString(target[..length]);
    }

    private static FileStatus Read(byte* b) => new(
        Uid: *(uint*)(b + 20),
        Device: ((ulong)*(uint*)(b + 136) << 32) | *(uint*)(b + 140),
        Inode: *(ulong*)(b + 32),
        Size: *(long*)(b + 40),
        MTimeSeconds: *(long*)(b + 112),
        MTimeNanoseconds: *(uint*)(b + 120),
        CTimeSeconds: *(long*)(b + 96),
        CTimeNanoseconds: *(uint*)(b + 104),
        Gid: *(uint*)(b + 24),
        Mode: *(ushort*)(b + 28));

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directoryFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "readlink")]
    private static partial nint ReadLinkNative(byte* path, byte* buffer, nint size);
}
