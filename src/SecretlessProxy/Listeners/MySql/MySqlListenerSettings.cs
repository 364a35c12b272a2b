using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// A MySql listener's compiled settings: the shared database ones (upstream, TLS, credential) and the
/// MySQL-only RSA key exchange settings (the listener's <c>MySql</c> section).
/// </summary>
internal sealed class MySqlListenerSettings : ListenerSettings
{
    public MySqlListenerSettings(DatabaseListenerSettings database, string? serverPublicKeyPem, bool allowPublicKeyRetrieval)
    {
        Database = database;
        ServerPublicKeyPem = serverPublicKeyPem;
        AllowPublicKeyRetrieval = allowPublicKeyRetrieval;
    }

    public DatabaseListenerSettings Database { get; }

    /// <summary>The server's RSA public key (PEM), pinned: caching_sha2_password / sha256_password full authentication without verified TLS encrypts to it.</summary>
    public string? ServerPublicKeyPem { get; }

    /// <summary>Whether, without verified TLS and without a pinned key, the proxy may ask the server for its RSA key (an impostor could answer with its own).</summary>
    public bool AllowPublicKeyRetrieval { get; }
}
