namespace SecretlessProxy.Core;

/// <summary>
/// The issuer transport would not connect: the name resolved to this host (where any local process
/// could be listening) and the endpoint was not configured for loopback. The message is safe to show.
/// </summary>
internal sealed class IssuerConnectionRefusedException(string message) : IOException(message);
