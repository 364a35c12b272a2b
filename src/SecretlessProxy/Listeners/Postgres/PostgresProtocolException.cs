namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// A connection cannot go on: the app gets a FATAL ErrorResponse with <see cref="SqlState"/> and
/// <see cref="Exception.Message"/>, which never hold a credential.
/// </summary>
internal sealed class PostgresProtocolException : Exception
{
    public PostgresProtocolException(string sqlState, string message, string outcome = "handshake-failed")
        : base(message)
    {
        SqlState = sqlState;
        Outcome = outcome;
    }

    /// <summary>The SQLSTATE the app sees (PostgreSQL docs, Appendix A).</summary>
    public string SqlState { get; }

    /// <summary>For spans, metrics and audit: <c>handshake-failed</c>, <c>login-failed</c>, <c>upstream-unreachable</c>...</summary>
    public string Outcome { get; }
}
