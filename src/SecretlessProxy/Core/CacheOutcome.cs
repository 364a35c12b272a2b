namespace SecretlessProxy.Core;

/// <summary>How a request got its credential; recorded on the span as <c>secretless.credential.cache</c>.</summary>
internal enum CacheOutcome
{
    /// <summary>Served from cache, no fetch started.</summary>
    Hit,

    /// <summary>The request waited for a fetch (cold cache, expired or stale value).</summary>
    Fetch,

    /// <summary>Served from cache while a background refresh ahead of expiry was started.</summary>
    RefreshAhead,
}
