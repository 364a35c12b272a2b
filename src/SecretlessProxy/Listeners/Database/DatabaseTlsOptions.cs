namespace SecretlessProxy.Listeners.Database;

/// <summary>TLS from the proxy to a database server (the app's side is loopback).</summary>
internal sealed class DatabaseTlsOptions
{
    /// <summary>
    /// <c>VerifyFull</c> (default): TLS, the server's chain and name verified against
    /// <see cref="CaFile"/> when given (as libpq's sslrootcert), else the system store. <c>Require</c>: TLS without verifying the server (encryption only).
    /// <c>Disable</c>: no TLS; the password then crosses the network only as the server's
    /// authentication method protects it.
    /// </summary>
    public string? Mode { get; set; }

    /// <summary>The CA certificates (PEM) the database server's chain must end at, instead of the system store.</summary>
    public string? CaFile { get; set; }

    /// <summary>The name to verify in the server's certificate, when it differs from the Upstream host.</summary>
    public string? ServerName { get; set; }
}
