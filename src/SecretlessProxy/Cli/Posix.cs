using System.Runtime.InteropServices;
using System.Text;

namespace SecretlessProxy.Cli;

/// <summary>
/// The libc calls that running a command under another user needs and .NET does not expose:
/// credentials (<c>setgroups</c>, <c>setresgid</c>, <c>setresuid</c> and their getters), process
/// flags (<c>prctl</c>), user and group look-up, signal state and <c>execvp</c>. glibc applies the
/// credential calls to every thread of the process (its setxid broadcast), so a multithreaded .NET
/// process drops them as a whole.
/// </summary>
internal static unsafe partial class Posix
{
    public const int PrSetNoNewPrivs = 38;
    public const int PrGetNoNewPrivs = 39;
    public const int SigPipe = 13;
    private const int SigSetMask = 2;

    public static uint EffectiveUid => GetEUid();

    public static uint EffectiveGid => GetEGid();

    public static int LastError => Marshal.GetLastPInvokeError();

    /// <summary>prctl(2) with its numeric arguments; -1 on failure (see <see cref="LastError"/>).</summary>
    public static int Prctl(int option, ulong argument) => PrctlNative(option, (nuint)argument, 0, 0, 0);

    /// <summary>The uid and primary gid of a user name (getpwnam(3)), or null when there is no such user.</summary>
    public static (uint Uid, uint Gid)? LookUpUser(string name)
    {
        var bytes = Utf8(name);
        fixed (byte* p = bytes)
        {
            // struct passwd { char *pw_name; char *pw_passwd; uid_t pw_uid; gid_t pw_gid; ... }
            var entry = GetPwNam(p);
            return entry == null ? null : (*(uint*)(entry + (2 * sizeof(nint))), *(uint*)(entry + (2 * sizeof(nint)) + 4));
        }
    }

    /// <summary>The gid of a group name (getgrnam(3)), or null when there is no such group.</summary>
    public static uint? LookUpGroup(string name)
    {
        var bytes = Utf8(name);
        fixed (byte* p = bytes)
        {
            // struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; char **gr_mem; }
            var entry = GetGrNam(p);
            return entry == null ? null : *(uint*)(entry + (2 * sizeof(nint)));
        }
    }

    /// <summary>Clears the supplementary groups, then sets every gid, then every uid (the order that still has the right to each step).</summary>
    public static string? DropTo(uint uid, uint gid)
    {
        if (SetGroups(0, null) != 0)
        {
            return "setgroups(0) failed: " + Marshal.GetPInvokeErrorMessage(LastError);
        }

        if (SetResGid(gid, gid, gid) != 0)
        {
            return "setresgid(" + gid + ") failed: " + Marshal.GetPInvokeErrorMessage(LastError);
        }

        return SetResUid(uid, uid, uid) != 0 ? "setresuid(" + uid + ") failed: " + Marshal.GetPInvokeErrorMessage(LastError) : null;
    }

    /// <summary>Null when real, effective and saved uid and gid are exactly these, no supplementary group is left, and (for uid &gt; 0) root cannot be regained.</summary>
    public static string? VerifyDropped(uint uid, uint gid)
    {
        uint ru = 0, eu = 0, su = 0, rg = 0, eg = 0, sg = 0;
        if (GetResUid(&ru, &eu, &su) != 0 || GetResGid(&rg, &eg, &sg) != 0)
        {
            return "getresuid/getresgid failed: " + Marshal.GetPInvokeErrorMessage(LastError);
        }

        if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
        {
            return "credentials are uid " + ru + "/" + eu + "/" + su + " gid " + rg + "/" + eg + "/" + sg + ", not " + uid + ":" + gid;
        }

        var groups = GetGroups(0, null);
        if (groups != 0)
        {
            return groups + " supplementary group(s) remain";
        }

        return uid != 0 && SetResUid(0, 0, 0) == 0 ? "root could be regained after the drop" : null;
    }

    /// <summary>
    /// Undoes what the .NET runtime changed in the signal state that exec keeps: it ignores SIGPIPE
    /// (a command writing to a closed pipe must die of it, as under a shell) and the calling thread
    /// may have signals blocked.
    /// </summary>
    public static void ResetSignalsForExec()
    {
        _ = Signal(SigPipe, 0);
        var empty = stackalloc byte[128];
        new Span<byte>(empty, 128).Clear();
        _ = SigProcMask(SigSetMask, empty, null);
    }

    /// <summary>unsetenv(3): removes the variable from the environment exec passes on (.NET's own copy is not that one).</summary>
    public static void UnsetEnvironmentVariable(string name)
    {
        fixed (byte* p = Utf8(name))
        {
            _ = UnsetEnv(p);
        }
    }

    /// <summary>execvp(3): replaces this process; returns only on failure, with the errno.</summary>
    public static int ExecVp(string file, IReadOnlyList<string> arguments)
    {
        var buffers = arguments.Select(Utf8).ToArray();
        var handles = buffers.Select(b => GCHandle.Alloc(b, GCHandleType.Pinned)).ToArray();
        try
        {
            var argv = stackalloc byte*[buffers.Length + 1];
            for (var i = 0; i < buffers.Length; i++)
            {
                argv[i] = (byte*)handles[i].AddrOfPinnedObject();
            }

            argv[buffers.Length] = null;
            fixed (byte* path = Utf8(file))
            {
                _ = ExecVpNative(path, argv);
                return LastError;
            }
        }
        finally
        {
            foreach (var handle in handles)
            {
                handle.Free();
            }
        }
    }

    private static byte[] Utf8(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEUid();

    [LibraryImport("libc", EntryPoint = "getegid")]
    private static partial uint GetEGid();

    [LibraryImport("libc", EntryPoint = "setgroups", SetLastError = true)]
    private static partial int SetGroups(nuint size, uint* list);

    [LibraryImport("libc", EntryPoint = "getgroups", SetLastError = true)]
    private static partial int GetGroups(int size, uint* list);

    [LibraryImport("libc", EntryPoint = "setresgid", SetLastError = true)]
    private static partial int SetResGid(uint real, uint effective, uint saved);

    [LibraryImport("libc", EntryPoint = "setresuid", SetLastError = true)]
    private static partial int SetResUid(uint real, uint effective, uint saved);

    [LibraryImport("libc", EntryPoint = "getresuid", SetLastError = true)]
    private static partial int GetResUid(uint* real, uint* effective, uint* saved);

    [LibraryImport("libc", EntryPoint = "getresgid", SetLastError = true)]
    private static partial int GetResGid(uint* real, uint* effective, uint* saved);

    // prctl is variadic in C; on x86-64 and arm64 Linux integer arguments travel as for a fixed signature.
    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int PrctlNative(int option, nuint argument2, nuint argument3, nuint argument4, nuint argument5);

    [LibraryImport("libc", EntryPoint = "getpwnam")]
    private static partial byte* GetPwNam(byte* name);

    [LibraryImport("libc", EntryPoint = "getgrnam")]
    private static partial byte* GetGrNam(byte* name);

    [LibraryImport("libc", EntryPoint = "signal")]
    private static partial nint Signal(int signal, nint handler);

    [LibraryImport("libc", EntryPoint = "sigprocmask")]
    private static partial int SigProcMask(int how, byte* set, byte* oldSet);

    [LibraryImport("libc", EntryPoint = "unsetenv")]
    private static partial int UnsetEnv(byte* name);

    [LibraryImport("libc", EntryPoint = "execvp", SetLastError = true)]
    private static partial int ExecVpNative(byte* file, byte** argv);
}
