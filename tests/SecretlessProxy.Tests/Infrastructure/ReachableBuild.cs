namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// The test output folder as another uid can reach it. A fresh clone in a private folder (a 0700
/// <c>mktemp -d</c>, as CI's fresh-clone run uses) puts the build where an unprivileged proxy
/// started through <c>setpriv</c> cannot enter; then the output is copied once per test run into a
/// world-readable folder under /tmp, removed when the test process exits.
/// </summary>
public static class ReachableBuild
{
    private static readonly Lazy<string> Folder = new(Prepare);

    /// <summary>A folder holding the test output that every uid can read and execute from.</summary>
    public static string Directory => Folder.Value;

    private static string Prepare()
    {
        var source = AppContext.BaseDirectory.TrimEnd('/');
        if (!OperatingSystem.IsLinux() || EveryAncestorIsSearchable(source))
        {
            return source;
        }

        var copy = Path.Combine(Path.GetTempPath(), "secretless-tests-build-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        CopyTree(source, copy);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                System.IO.Directory.Delete(copy, recursive: true);
            }
            catch (IOException)
            {
                // A proxy still exiting may hold a file; /tmp is cleaned by the machine anyway.
            }
        };
        return copy;
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static bool EveryAncestorIsSearchable(string path)
    {
        for (var dir = new DirectoryInfo(path); dir is not null; dir = dir.Parent)
        {
            if ((dir.UnixFileMode & UnixFileMode.OtherExecute) == 0)
            {
                return false;
            }
        }

        return true;
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static void CopyTree(string source, string target)
    {
        var folder = System.IO.Directory.CreateDirectory(target);
        folder.UnixFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        foreach (var file in System.IO.Directory.EnumerateFiles(source))
        {
            var to = Path.Combine(target, Path.GetFileName(file));
            File.Copy(file, to);
            File.SetUnixFileMode(to, File.GetUnixFileMode(to) | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        foreach (var dir in System.IO.Directory.EnumerateDirectories(source))
        {
            CopyTree(dir, Path.Combine(target, Path.GetFileName(dir)));
        }
    }
}
