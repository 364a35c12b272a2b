namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// What the proxy's login may send, given how the server connection is secured: the password itself
/// only to a TLS server whose certificate was verified; RSA-encrypted under a pinned key, or under a
/// key the server hands over only when the operator allowed that (an impostor could hand over its own).
/// </summary>
internal sealed record MySqlLoginOptions(bool Tls, bool Verified, string? ServerPublicKeyPem, bool AllowPublicKeyRetrieval)
{
    /// <summary>Why the password cannot be sent in cleartext here, for the error the app gets.</summary>
    public string UnverifiedBecause => Tls ? "its certificate is not verified (Tls Mode Require)" : "the connection has no TLS (Tls Mode Disable)";
}
