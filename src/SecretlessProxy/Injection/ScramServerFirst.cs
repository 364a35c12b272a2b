namespace SecretlessProxy.Injection;

/// <summary>
/// A checked SCRAM server-first message (RFC 5802 section 5.1): the combined nonce, the salt and
/// the iteration count the server asks for, and the message text for the AuthMessage.
/// </summary>
internal readonly record struct ScramServerFirst(string Message, string Nonce, byte[] Salt, int Iterations);
