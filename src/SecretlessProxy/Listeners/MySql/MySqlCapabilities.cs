namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// The capability flags of the MySQL client/server protocol (MySQL docs, "Capabilities Flags"),
/// and the sets the proxy offers, owns and passes on.
/// </summary>
[Flags]
internal enum MySqlCapabilities : uint
{
    None = 0,

    /// <summary>CLIENT_LONG_PASSWORD; MariaDB reads the same bit as CLIENT_MYSQL (a peer without MariaDB's extended flags).</summary>
    LongPassword = 1,
    FoundRows = 1 << 1,
    LongFlag = 1 << 2,
    ConnectWithDb = 1 << 3,
    NoSchema = 1 << 4,
    Compress = 1 << 5,
    Odbc = 1 << 6,
    LocalFiles = 1 << 7,
    IgnoreSpace = 1 << 8,
    Protocol41 = 1 << 9,
    Interactive = 1 << 10,
    Ssl = 1 << 11,
    IgnoreSigpipe = 1 << 12,
    Transactions = 1 << 13,
    Reserved = 1 << 14,
    SecureConnection = 1 << 15,
    MultiStatements = 1 << 16,
    MultiResults = 1 << 17,
    PsMultiResults = 1 << 18,
    PluginAuth = 1 << 19,
    ConnectAttrs = 1 << 20,
    PluginAuthLenencClientData = 1 << 21,
    CanHandleExpiredPasswords = 1 << 22,
    SessionTrack = 1 << 23,
    DeprecateEof = 1 << 24,
    OptionalResultsetMetadata = 1 << 25,
    ZstdCompression = 1 << 26,
    QueryAttributes = 1 << 27,
    MultiFactorAuthentication = 1 << 28,
    SslVerifyServerCert = 1 << 30,
    RememberOptions = 1u << 31,

    /// <summary>
    /// What the proxy's greeting may offer the app: what both MySQL 5.7+/8 and MariaDB 10.2+ servers
    /// support and the splice can carry unchanged. Left out: compression (the proxy would have to
    /// frame it), query attributes and optional metadata (MySQL 8 only, they change COM_QUERY and
    /// result sets) and multi-factor authentication.
    /// </summary>
    Offered = LongPassword | FoundRows | LongFlag | ConnectWithDb | NoSchema | Odbc | LocalFiles | IgnoreSpace | Protocol41
        | Interactive | IgnoreSigpipe | Transactions | Reserved | SecureConnection | MultiStatements | MultiResults | PsMultiResults
        | PluginAuth | ConnectAttrs | PluginAuthLenencClientData | CanHandleExpiredPasswords | SessionTrack | DeprecateEof,

    /// <summary>
    /// Flags about the login itself, which the proxy sets toward the server on its own account
    /// rather than copying the app's: they do not change the bytes after login.
    /// </summary>
    ProxyOwned = LongPassword | ConnectWithDb | Ssl | SecureConnection | PluginAuth | ConnectAttrs | PluginAuthLenencClientData
        | CanHandleExpiredPasswords | SslVerifyServerCert | RememberOptions | Reserved,
}
