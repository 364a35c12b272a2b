namespace SecretlessProxy.Credentials;

/// <summary>
/// The one server a credential is minted for (an RDS auth token signs the host and port it is for):
/// a listener that logs in with it must connect there, or the server rejects the token.
/// </summary>
internal sealed record CredentialAudience(string Host, int Port)
{
    public bool Matches(string host, int port) => port == Port && string.Equals(host, Host, StringComparison.OrdinalIgnoreCase);

    public override string ToString() => (Host.Contains(':', StringComparison.Ordinal) ? "[" + Host + "]" : Host) + ":" + Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
