namespace SecretlessProxy.Admin;

/// <summary>
/// Why a state-changing admin call was not accepted, as the caller sees it (problem details) and as
/// the log records it. Built from key names and uids, never from a token.
/// </summary>
/// <param name="Challenge">Whether to send <c>WWW-Authenticate: Bearer</c> (a token would be accepted).</param>
/// <param name="Reason">A short reason for the log line.</param>
internal sealed record AdminRefusal(int Status, string Type, string Title, string Detail, bool Challenge, string Reason);
