namespace SecretlessProxy.Tests.Configuration;

/// <summary>Locates files of the repository itself (examples, schema) from the test output folder.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> RootLazy = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SecretlessProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("No folder above " + AppContext.BaseDirectory + " contains SecretlessProxy.sln.");
    });

    public static string Root => RootLazy.Value;

    public static string Combine(params string[] parts) => Path.Combine([Root, .. parts]);

    /// <summary>Every example configuration shipped in the repository, relative to its root.</summary>
    public static IReadOnlyList<string> ExampleConfigs()
    {
        var examples = Directory.GetFiles(Combine("deploy", "examples"), "*.json")
            .Append(Combine("deploy", "kubernetes", "base", "appsettings.json"))
            .Append(Combine("deploy", "kubernetes", "overlays", "explicit", "appsettings.json"))
            .Select(p => Path.GetRelativePath(Root, p).Replace('\\', '/'))
            .Order(StringComparer.Ordinal)
            .ToArray();
        return examples;
    }
}
