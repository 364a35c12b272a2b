namespace SecretlessProxy.Core;

/// <summary>What an injection acts on; a listener only uses a policy whose injection it can perform.</summary>
internal enum InjectionTarget
{
    /// <summary>A header, query parameter or signature on the outgoing HTTP request.</summary>
    HttpRequest,

    /// <summary>The client certificate of the upstream TLS handshake.</summary>
    TlsClientCertificate,

    /// <summary>The database protocol's login exchange.</summary>
    DatabaseLogin,
}
