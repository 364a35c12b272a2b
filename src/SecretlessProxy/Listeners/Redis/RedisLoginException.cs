namespace SecretlessProxy.Listeners.Redis;

/// <summary>
/// The server refused the proxy's login (<see cref="Code"/> is its error code, WRONGPASS for a
/// wrong password) or broke the protocol during it. The message is the server's or the proxy's
/// words, never the credential.
/// </summary>
internal sealed class RedisLoginException : Exception
{
    public RedisLoginException(string code, string message, bool handshake = false)
        : base(message)
    {
        Code = code;
        Handshake = handshake;
    }

    public string Code { get; }

    /// <summary>The server did not speak RESP as expected (rather than refusing the login).</summary>
    public bool Handshake { get; }
}
