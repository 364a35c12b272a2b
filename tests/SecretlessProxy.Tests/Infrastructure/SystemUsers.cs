namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// The system users the real database servers run as: initdb, mariadbd and friends refuse to run
/// as root, so as root their folders are handed to the server's own user.
/// </summary>
public static class SystemUsers
{
    public static bool Exists(string user) =>
        File.ReadLines("/etc/passwd").Any(l => l.StartsWith(user + ":", StringComparison.Ordinal));

    /// <summary><c>chown -R owner path</c> when running as root (otherwise the folder is already ours).</summary>
    public static async Task ChownAsync(string path, string owner)
    {
        if (Environment.UserName != "root")
        {
            return;
        }

        var result = await ExternalClient.RunAsync("chown", ["-R", owner, path]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException("chown failed: " + result);
        }
    }
}
