using Polly;
using Polly.Retry;
using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// The retry pipeline every network source wraps one fetch in: transient failures only
/// (<see cref="CredentialFetchException.IsTransient"/>), exponential with jitter, on the injected
/// clock. SDK-level retries are off in every source, so this and the cache's backoff are the only
/// retries.
/// </summary>
internal static class FetchRetry
{
    public static ResiliencePipeline Create(TimeProvider time, int attempts, TimeSpan delay)
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = time };
        if (attempts > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<CredentialFetchException>(static e => e.IsTransient),
                MaxRetryAttempts = attempts,
                Delay = delay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
            });
        }

        return builder.Build();
    }
}
