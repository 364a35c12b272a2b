namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// The listener's <c>MySql</c> section: how caching_sha2_password / sha256_password full
/// authentication may send the password when the server connection is not verified TLS.
/// </summary>
internal sealed class MySqlListenerOptions
{
    /// <summary>A PEM file with the server's RSA public key: the password is encrypted to it (pinned, so an impostor cannot substitute its own).</summary>
    public string? ServerPublicKeyFile { get; set; }

    /// <summary>Ask the server for its RSA public key when none is pinned. Off by default: whoever answers could send its own key and read the password.</summary>
    public bool? AllowPublicKeyRetrieval { get; set; }
}
