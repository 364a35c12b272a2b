namespace SecretlessProxy.Credentials;

/// <summary>How one fetch from an issuer is bounded and retried, compiled from <see cref="IssuerSourceOptions"/>.</summary>
internal readonly record struct FetchLimits(TimeSpan Timeout, int RetryAttempts, TimeSpan RetryDelay)
{
    public const int MaxRetryAttempts = 10;

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    public static readonly TimeSpan DefaultRetryDelay = TimeSpan.FromMilliseconds(200);

    public const int DefaultRetryAttempts = 2;
}
