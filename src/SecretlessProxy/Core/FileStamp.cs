namespace SecretlessProxy.Core;

/// <summary>Identifies one version of a file cheaply (one or two stat calls), following symlinks.</summary>
internal readonly record struct FileStamp(string? Target, DateTime LastWriteUtc, long Length)
{
    public static FileStamp? Read(string path)
    {
        try
        {
            var info = new FileInfo(path);
            var target = info.LinkTarget is null ? null : info.ResolveLinkTarget(returnFinalTarget: true)?.FullName;
            var final = target is null ? info : new FileInfo(target);
            return final.Exists ? new FileStamp(target, final.LastWriteTimeUtc, final.Length) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
