using SecretlessProxy.Core;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// A connection cannot go on: the app gets a FATAL ErrorResponse with <see cref="SqlState"/> and
/// <see cref="Exception.Message"/>, which never hold a credential.
/// </summary>
internal sealed class PostgresProtocolException : Exception
{
    public PostgresProtocolException(string sqlState, string message, AccessOutcome outcome = AccessOutcome.HandshakeFailed)
        : base(message)
    {
        SqlState = sqlState;
        Outcome = outcome;
    }

    /// <summary>The SQLSTATE the app sees (PostgreSQL docs, Appendix A).</summary>
    public string SqlState { get; }

    /// <summary>How the access ended, for spans, metrics and audit: the server broke the protocol, refused the login, could not be reached...</summary>
    public AccessOutcome Outcome { get; }
}
