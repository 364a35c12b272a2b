namespace SecretlessProxy.Configuration;

internal sealed class InjectOptions
{
    /// <summary>Header name; with <see cref="Format"/> containing <c>{token}</c>.</summary>
    public string? Header { get; set; }

    public string? Format { get; set; }

    /// <summary>HTTP Basic: the credential's user name and its secret as the password.</summary>
    public bool? Basic { get; set; }

    /// <summary>Query parameter name that carries the secret.</summary>
    public string? Query { get; set; }

    /// <summary>Sign the request with AWS Signature Version 4 using the credential's temporary keys.</summary>
    public AwsSigV4Options? AwsSigV4 { get; set; }

    /// <summary>
    /// Log in to a database in its connection handshake (a Postgres listener). The credential is the
    /// listener's; a policy with this injection only authorizes the connection.
    /// </summary>
    public bool? DatabaseLogin { get; set; }

    /// <summary>Present a TLS client certificate to the upstream; the certificate is the credential.</summary>
    public ClientCertificateOptions? ClientCertificate { get; set; }
}
