using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A fact that needs the real MariaDB test server: reported as skipped, with the reason, on a
/// machine without it. With CI=true it always runs, so a missing server fails (the fixture throws).
/// </summary>
public sealed class MariaDbFactAttribute : FactAttribute
{
    public MariaDbFactAttribute()
    {
        if (!string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase) && MariaDbServer.MissingReason() is { } reason)
        {
            Skip = reason;
        }
    }
}
