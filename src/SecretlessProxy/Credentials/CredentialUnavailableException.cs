namespace SecretlessProxy.Credentials;

/// <summary>No valid credential can be had for a request: the proxy answers 503 and does not call the upstream.</summary>
internal sealed class CredentialUnavailableException : Exception
{
    public CredentialUnavailableException(string credentialName, string reason)
        : base("credential '" + credentialName + "' is unavailable: " + reason)
    {
        CredentialName = credentialName;
        Reason = reason;
    }

    public string CredentialName { get; }

    public string Reason { get; }
}
