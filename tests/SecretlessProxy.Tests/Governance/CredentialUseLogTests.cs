using SecretlessProxy.Core;
using SecretlessProxy.Runtime;
using Xunit;

namespace SecretlessProxy.Tests.Governance;

/// <summary>The use log behind <c>GET /inventory</c> stays within its bound, and keeps the latest use.</summary>
public sealed class CredentialUseLogTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 5, 9, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Combinations_beyond_the_bound_are_counted_but_not_itemised()
    {
        var log = new CredentialUseLog(Start);

        for (var i = 0; i < CredentialUseLog.MaxEntries + 10; i++)
        {
            log.Record("key", "p", "api", new RequestDestination("https", "h" + i + ".example.com", 443, "GET", "/"), Caller.Unknown, null, Start);
        }

        // A combination already itemised is still counted in full.
        log.Record("key", "p", "api", new RequestDestination("https", "h0.example.com", 443, "GET", "/other"), Caller.Unknown, null, Start.AddMinutes(1));

        Assert.Equal(CredentialUseLog.MaxEntries, log.Uses().Count);
        Assert.Equal(10, log.NotRecorded);
        var first = Assert.Single(log.Uses(), u => u.Destination == "https://h0.example.com:443");
        Assert.Equal((2L, Start.AddMinutes(1), "unknown"), (first.Count, first.LastUse, first.Caller));
    }

    [Fact]
    public void The_last_use_is_the_latest_even_when_recorded_out_of_order()
    {
        var log = new CredentialUseLog(Start);
        var db = new RequestDestination("postgres", "db.internal", 5432, "CONNECT", "/orders", IsDatabase: true);
        var caller = new Caller(isKnown: true, uid: 1000, pid: null, executable: null, executableSha256: null, containerId: null, cgroup: null);

        log.Record("db", "orders-db", "orders", db, caller, "system:serviceaccount:shop:orders", Start.AddMinutes(5));
        log.Record("db", "orders-db", "orders", db, caller, "system:serviceaccount:shop:orders", Start.AddMinutes(2));

        var use = Assert.Single(log.Uses());
        Assert.Equal(new CredentialUse("db", "orders-db", "orders", "postgres://db.internal:5432/orders", "uid 1000", "system:serviceaccount:shop:orders", 2, Start.AddMinutes(5)), use);
    }
}
