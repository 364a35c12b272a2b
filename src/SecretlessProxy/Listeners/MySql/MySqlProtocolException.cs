using SecretlessProxy.Core;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// A connection cannot go on: the app gets an ERR packet with <see cref="Code"/>, <see cref="SqlState"/>
/// and <see cref="Exception.Message"/>, which never hold a credential.
/// </summary>
internal sealed class MySqlProtocolException : Exception
{
    public MySqlProtocolException(ushort code, string sqlState, string message, AccessOutcome outcome = AccessOutcome.HandshakeFailed)
        : base(message)
    {
        Code = code;
        SqlState = sqlState;
        Outcome = outcome;
    }

    /// <summary>The MySQL error number the app sees.</summary>
    public ushort Code { get; }

    /// <summary>The SQLSTATE the app sees.</summary>
    public string SqlState { get; }

    /// <summary>How the access ended, for spans, metrics and audit.</summary>
    public AccessOutcome Outcome { get; }
}
