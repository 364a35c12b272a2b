using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// Waits for background work (a refresh on the thread pool, a fire-and-forget release) to show. A
/// bounded poll, not a timing assertion: the bound only turns a hang into a failure that names what
/// never happened.
/// </summary>
public static class Poll
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    public static async Task UntilAsync(Func<bool> condition, string what)
    {
        var started = DateTime.UtcNow;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow - started < Bound, "waited " + Bound.TotalSeconds + " s for " + what);
            await Task.Delay(10);
        }
    }
}
