namespace SecretlessProxy.Core;

/// <summary>Reads small secret files the way Kubernetes and Docker mount them.</summary>
internal static class SecretFileReader
{
    /// <summary>Secret files are tiny; anything larger is a misconfiguration, not a credential.</summary>
    private const long MaxBytes = 64 * 1024;

    /// <summary>
    /// Reads the whole file and trims trailing line breaks (editors and <c>echo</c> add them; a
    /// secret never ends in one). The message of a failure names the file, never its content.
    /// </summary>
    public static async Task<string> ReadAsync(string path, string what, CancellationToken cancellationToken)
    {
        string text;
        try
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > MaxBytes)
            {
                throw new CredentialFetchException(what + " file '" + path + "' is larger than 64 KiB", isTransient: false);
            }

            text = await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException)
        {
            throw new CredentialFetchException(what + " file '" + path + "' does not exist", isTransient: false);
        }
        catch (DirectoryNotFoundException)
        {
            throw new CredentialFetchException(what + " file '" + path + "' does not exist", isTransient: false);
        }
        catch (UnauthorizedAccessException)
        {
            throw new CredentialFetchException(what + " file '" + path + "' is not readable by the proxy", isTransient: false);
        }
        catch (IOException ex)
        {
            throw new CredentialFetchException(what + " file '" + path + "' could not be read (" + ex.GetType().Name + ")", isTransient: true);
        }

        text = text.TrimEnd('\r', '\n');
        if (text.Length == 0)
        {
            throw new CredentialFetchException(what + " file '" + path + "' is empty", isTransient: false);
        }

        return text;
    }

    /// <summary>
    /// Control characters would let a value break out of a header (CR/LF injection) or corrupt a
    /// query string; such a value is refused rather than sent.
    /// </summary>
    public static void EnsurePrintable(string value, string what)
    {
        foreach (var c in value)
        {
            if (char.IsControl(c))
            {
                throw new CredentialFetchException(what + " contains control characters and cannot be injected", isTransient: false);
            }
        }
    }
}
