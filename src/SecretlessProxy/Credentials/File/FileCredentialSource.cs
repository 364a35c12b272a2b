using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// A secret read from a file, such as a Kubernetes Secret volume. The file is re-read when it
/// changes: Kubernetes rotates a secret by swapping the <c>..data</c> symlink, so the stamp is the
/// final link target plus its modification time and length, checked on every use.
/// </summary>
internal sealed class FileCredentialSource : ICredentialSource
{
    private readonly string _path;
    private readonly string? _username;
    private readonly string? _usernameFile;
    private readonly TimeProvider _time;

    public FileCredentialSource(string path, string? username, string? usernameFile, TimeProvider time)
    {
        _path = path;
        _username = username;
        _usernameFile = usernameFile;
        _time = time;
    }

    public string Kind => "File";

    /// <summary>A file's value never expires on its own: it is valid until someone replaces the file (and retires it where it was issued).</summary>
    public CredentialSourceDescription Describe() => new(
        "file " + _path,
        "re-read when the file changes (its final symlink target, modification time or length)",
        "no expiry: valid until the file is replaced",
        "drops the cached value; the file is read again on the next request, so the same secret comes back until the file is replaced",
        LongLived: true);

    public async Task<Credential> FetchAsync(CancellationToken cancellationToken)
    {
        // Stamp before reading: if the file changes during the read, the next use sees a newer stamp
        // and reads again, rather than keeping a value that may be half old.
        var stamp = FileStamp.Read(_path);
        var secret = await SecretFileReader.ReadAsync(_path, "secret", cancellationToken).ConfigureAwait(false);
        SecretFileReader.EnsurePrintable(secret, "the secret in '" + _path + "'");
        var username = await UsernameResolver.ResolveAsync(_username, _usernameFile, cancellationToken).ConfigureAwait(false);
        return new Credential(secret, username, _time.GetUtcNow(), expiresAt: null, stamp);
    }

    public bool IsStale(Credential credential) => !Equals(credential.SourceStamp, FileStamp.Read(_path));
}
