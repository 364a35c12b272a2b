namespace SecretlessProxy.Core;

/// <summary>
/// The files one configuration names: relative paths resolve against the config file's folder,
/// each must exist when <see cref="CheckFiles"/> is set, and those that hold a secret are recorded
/// (for <c>validate</c>'s permission checks and <c>run --</c>'s access test).
/// </summary>
internal sealed class ConfigFiles
{
    private readonly string _baseDirectory;
    private readonly List<SecretFile> _secretFiles;

    /// <param name="secretFiles">Where the secret files are recorded; the caller hands them to the snapshot.</param>
    public ConfigFiles(string baseDirectory, bool checkFiles, List<SecretFile> secretFiles)
    {
        _baseDirectory = baseDirectory;
        CheckFiles = checkFiles;
        _secretFiles = secretFiles;
    }

    /// <summary>Whether referenced files must exist now (not when only the CA or the wrapped command is wanted).</summary>
    public bool CheckFiles { get; }

    public string Require(string path, string key, List<ConfigError> errors)
    {
        var full = Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(_baseDirectory, path));
        if (CheckFiles && !File.Exists(full))
        {
            errors.Add(new(key, "file '" + full + "' does not exist"));
        }

        return full;
    }

    /// <summary>A file that holds a secret: required like any other, and recorded.</summary>
    public string RequireSecret(string path, string key, List<ConfigError> errors)
    {
        var full = Require(path, key, errors);
        _secretFiles.Add(new SecretFile(key, full));
        return full;
    }
}
