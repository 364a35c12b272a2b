using SecretlessProxy.Core;

namespace SecretlessProxy.Listeners.Database;

/// <summary>
/// The proxy could not reach or secure its connection to the database server. The message is safe
/// to show the app (host, port, the TLS failure), which gets it in its protocol's own error.
/// </summary>
internal sealed class DatabaseConnectException : Exception
{
    public DatabaseConnectException(AccessOutcome outcome, string message)
        : base(message)
    {
        Outcome = outcome;
    }

    /// <summary><see cref="AccessOutcome.UpstreamUnreachable"/> or <see cref="AccessOutcome.UpstreamTlsFailed"/>.</summary>
    public AccessOutcome Outcome { get; }
}
