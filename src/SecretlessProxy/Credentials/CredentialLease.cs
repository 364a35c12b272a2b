using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>A credential handed to one request, with how it was obtained.</summary>
internal readonly record struct CredentialLease(Credential Credential, CacheOutcome Outcome)
{
    public string OutcomeName => Outcome switch
    {
        CacheOutcome.Hit => "hit",
        CacheOutcome.Fetch => "fetch",
        _ => "refresh-ahead",
    };
}
