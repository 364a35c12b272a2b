using System.Runtime.InteropServices;

namespace SecretlessProxy.Hosting;

/// <summary>
/// Closes the proxy's process to others of its uid. A dumpable process's <c>/proc/PID/mem</c>,
/// <c>environ</c>, <c>fd</c> and <c>maps</c> are open to any process of the same uid (and ptrace
/// attaches); after <c>prctl(PR_SET_DUMPABLE, 0)</c> they need CAP_SYS_PTRACE, and the files under
/// <c>/proc/PID</c> belong to root. It is partial: <c>cmdline</c> and <c>status</c> stay world-readable,
/// and files the proxy reads stay readable by its uid. No core dump is written either.
/// </summary>
internal static partial class ProcessHardening
{
    private const int PrSetDumpable = 4;
    private const int PrGetDumpable = 3;

    /// <summary>Null when the process is now not dumpable, else the error.</summary>
    public static string? MakeNotDumpable()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "prctl(PR_SET_DUMPABLE) exists on Linux only";
        }

        if (Prctl(PrSetDumpable, 0, 0, 0, 0) != 0)
        {
            return "prctl(PR_SET_DUMPABLE, 0) failed: " + Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
        }

        return Prctl(PrGetDumpable, 0, 0, 0, 0) == 0 ? null : "prctl(PR_GET_DUMPABLE) still reports the process dumpable";
    }

    // prctl is variadic in C; on x86-64 and arm64 Linux integer arguments travel as for a fixed signature.
    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int Prctl(int option, nuint argument2, nuint argument3, nuint argument4, nuint argument5);
}
