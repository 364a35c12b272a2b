using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A fact that needs the real PostgreSQL test server: reported as skipped, with the reason, on a
/// machine without it. With CI=true it always runs, so a missing server fails (the fixture throws).
/// </summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (!string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase) && PostgresServer.MissingReason() is { } reason)
        {
            Skip = reason;
        }
    }
}
