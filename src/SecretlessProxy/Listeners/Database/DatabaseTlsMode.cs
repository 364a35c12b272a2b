namespace SecretlessProxy.Listeners.Database;

/// <summary>TLS toward a database server, named after libpq's sslmode values of the same meaning.</summary>
internal enum DatabaseTlsMode
{
    /// <summary>TLS; the server's certificate chain and name are verified.</summary>
    VerifyFull,

    /// <summary>TLS without verifying the server: protects against passive listeners only.</summary>
    Require,

    /// <summary>No TLS.</summary>
    Disable,
}
