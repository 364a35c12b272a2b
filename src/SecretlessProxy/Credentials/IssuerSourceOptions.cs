namespace SecretlessProxy.Credentials;

/// <summary>
/// The keys every source that fetches from an issuer shares: how one fetch is bounded and retried
/// (<see cref="CredentialSourceContext.CompileFetchLimits"/>) and how a local issuer is reached.
/// </summary>
internal abstract class IssuerSourceOptions : IIssuerEndpointOptions
{
    /// <summary>Wall-clock limit for one request to the issuer. Default 10 s.</summary>
    public TimeSpan? Timeout { get; set; }

    /// <summary>Retries after a failed request within one fetch. Default 2.</summary>
    public int? RetryAttempts { get; set; }

    /// <summary>First retry delay; doubles with jitter. Default 200 ms.</summary>
    public TimeSpan? RetryDelay { get; set; }

    public string? UnixSocket { get; set; }

    public string[]? PinnedCertificateSha256 { get; set; }

    public bool? AllowLoopbackSquatting { get; set; }
}
