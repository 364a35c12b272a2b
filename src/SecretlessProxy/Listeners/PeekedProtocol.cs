namespace SecretlessProxy.Listeners;

/// <summary>What the first bytes of a redirected connection say it speaks.</summary>
internal enum PeekedProtocol
{
    /// <summary>Too few bytes yet to tell.</summary>
    NeedMore,

    /// <summary>A TLS ClientHello (its SNI, when present, names the host).</summary>
    Tls,

    /// <summary>An HTTP/1.x request line (its Host header names the host, request by request).</summary>
    Http,

    /// <summary>Anything else: relayed blind or refused, never parsed further.</summary>
    Other,
}
