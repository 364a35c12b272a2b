namespace SecretlessProxy.Identity;

/// <summary>What a workload identity source runs on: the proxy's clock, its token client and its loggers.</summary>
internal sealed class IdentityServices
{
    public IdentityServices(TimeProvider time, HttpMessageInvoker tokenClient, ILoggerFactory loggers)
    {
        Time = time;
        TokenClient = tokenClient;
        Loggers = loggers;
    }

    public TimeProvider Time { get; }

    /// <summary>The shared client for issuers' key endpoints.</summary>
    public HttpMessageInvoker TokenClient { get; }

    public ILoggerFactory Loggers { get; }
}
