using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A fact that needs the real Redis test server (Debian's redis-server and redis-cli): reported as
/// skipped, with the reason, on a machine without them. With CI=true it always runs, so a missing
/// server fails (the fixture throws).
/// </summary>
public sealed class RedisFactAttribute : FactAttribute
{
    public RedisFactAttribute()
    {
        if (!string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase) && RedisServer.MissingReason() is { } reason)
        {
            Skip = reason;
        }
    }
}
