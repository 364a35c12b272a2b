using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using SecretlessProxy.Attestation;

namespace SecretlessProxy.Configuration;

/// <summary>
/// Who besides the proxy could read a secret file, from its owner, group and permission bits and
/// those of every directory on its real path (a 0644 file inside a 0700 directory is out of reach).
/// Access control lists are not read: <c>run --</c> also asks the kernel, by opening each file
/// under the command's uid before the command starts.
/// </summary>
internal static unsafe partial class SecretFileAccess
{
    private const int PathMax = 4096;

    /// <summary>
    /// Why a process running as <paramref name="uid"/> and <paramref name="gid"/> (no supplementary
    /// groups) could read the file, or null when it could not or the file does not exist.
    /// </summary>
    public static string? ReadableBy(string path, uint uid, uint gid)
    {
        if (RealPath(path) is not { } real || !ProcFs.TryStat(real, followLinks: true, out var file))
        {
            return null;
        }

        if (uid == 0)
        {
            return "uid 0 reads every file";
        }

        foreach (var directory in Ancestors(real))
        {
            if (!ProcFs.TryStat(directory, followLinks: true, out var status) || !Permits(status, uid, gid, 1))
            {
                return null;
            }
        }

        return Permits(file, uid, gid, 4) ? Describe(file) + " lets uid " + uid + " gid " + gid + " read it" : null;
    }

    /// <summary>
    /// Why users other than the file's owner can read it (its group or others have read permission,
    /// and every directory on its path lets them through), or null.
    /// </summary>
    public static string? ReadableByOthers(string path)
    {
        if (RealPath(path) is not { } real || !ProcFs.TryStat(real, followLinks: true, out var file) || (file.Mode & 0b000_100_100) == 0)
        {
            return null;
        }

        foreach (var directory in Ancestors(real))
        {
            if (!ProcFs.TryStat(directory, followLinks: true, out var status) || (status.Mode & 0b000_001_001) == 0)
            {
                return null;
            }
        }

        return Describe(file) + " lets " + ((file.Mode & 0b000_000_100) != 0 ? "every user" : "members of group " + file.Gid) + " read it";
    }

    private static string Describe(ProcFs.FileStatus file) =>
        "mode " + Convert.ToString(file.Mode & 0xFFF, 8).PadLeft(4, '0') + ", owner uid " + file.Uid.ToString(CultureInfo.InvariantCulture) + " gid " + file.Gid.ToString(CultureInfo.InvariantCulture);

    /// <summary>The POSIX rule: exactly one class applies, owner before group before others.</summary>
    private static bool Permits(ProcFs.FileStatus status, uint uid, uint gid, int bit)
    {
        var shift = status.Uid == uid ? 6 : status.Gid == gid ? 3 : 0;
        return ((status.Mode >> shift) & bit) != 0;
    }

    private static IEnumerable<string> Ancestors(string real)
    {
        for (var directory = Path.GetDirectoryName(real); directory is not null; directory = Path.GetDirectoryName(directory))
        {
            yield return directory;
        }
    }

    /// <summary>realpath(3): every link resolved, so the directories checked are those the kernel walks.</summary>
    private static string? RealPath(string path)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, bytes);
        var resolved = stackalloc byte[PathMax];
        fixed (byte* p = bytes)
        {
            if (RealPathNative(p, resolved) == null)
            {
                return null;
            }
        }

        return Marshal.PtrToStringUTF8((nint)resolved);
    }

    [LibraryImport("libc", EntryPoint = "realpath")]
    private static partial byte* RealPathNative(byte* path, byte* resolved);
}
