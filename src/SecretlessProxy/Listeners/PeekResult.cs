namespace SecretlessProxy.Listeners;

/// <summary>The outcome of <see cref="ProtocolPeek.Classify"/>: the protocol and, for TLS, the SNI host name (null when the client sent none).</summary>
internal readonly record struct PeekResult(PeekedProtocol Protocol, string? ServerName = null);
