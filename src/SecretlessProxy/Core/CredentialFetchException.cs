namespace SecretlessProxy.Core;

/// <summary>
/// A credential could not be fetched. The message is shown to operators (logs, /credentials) and
/// must never contain a secret or a response body that might echo one.
/// </summary>
internal sealed class CredentialFetchException : Exception
{
    public CredentialFetchException(string message, bool isTransient, Exception? innerException = null)
        : base(message, innerException)
    {
        IsTransient = isTransient;
    }

    /// <summary>Worth retrying within the same fetch (network error, 5xx, 429, timeout, unreadable body).</summary>
    public bool IsTransient { get; }
}
