using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Xunit;
using SecretlessProxy.Identity.Spiffe;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Identity.Spiffe;

/// <summary>
/// The X.509-SVID stream against a fake agent: an agent that accepts the stream and never sends is
/// a failure with the reason within the call timeout (requests are not held), and the stream is
/// opened again with backoff until the agent answers.
/// </summary>
public sealed class SpiffeX509SvidWatcherTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private FakeWorkloadApi _agent = null!;

    public async Task InitializeAsync()
    {
        _agent = new FakeWorkloadApi(_time);
        await _agent.StartAsync();
    }

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    [Fact]
    public async Task An_agent_that_never_sends_the_first_message_is_a_failure_within_the_call_timeout_and_the_stream_is_reopened()
    {
        _agent.Hang = true;
        using var watcher = new X509SvidWatcher(_agent.SocketPath, null, _time, NullLogger.Instance, TimeSpan.FromSeconds(1));
        var upstream = new SpiffeUpstream("ledger", ["localhost"], new SpiffeIdMatcher([FakeWorkloadApi.TrustDomainId + "/ns/ledger/sa/api"], []), watcher, _time);

        // Both the upstream-trust path and the client-certificate path get an answer, not a hang.
        var reason = await upstream.ReadyAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal("upstream trust 'ledger' has no X.509 bundle to verify the upstream with: the SPIFFE Workload API at " + _agent.Endpoint + " did not send an X.509-SVID within 1 s", reason);
        await watcher.WhenFirstAnswerAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));
        Assert.False(watcher.TryGetSvid(out _, out var why));
        Assert.Contains("did not send an X.509-SVID within 1 s", why, StringComparison.Ordinal);

        // The agent answers again: the stream is opened again after the backoff, on the proxy's clock.
        _agent.Hang = false;
        for (var i = 0; i < 100 && !watcher.TryGetSvid(out _, out _); i++)
        {
            _time.Advance(SpiffeJwtIdentity.MaxBackoff);
            await Task.Delay(100);
        }

        Assert.True(watcher.TryGetSvid(out var svid, out var still), still);
        Assert.Equal(_agent.CurrentX509Thumbprint, svid!.Certificate.Thumbprint);
    }

    [Fact]
    public async Task Disposing_a_watcher_with_an_open_stream_ends_its_loop_without_a_fault()
    {
        var watcher = new X509SvidWatcher(_agent.SocketPath, null, _time, NullLogger.Instance);
        await watcher.WhenFirstAnswerAsync(CancellationToken.None);
        Assert.True(watcher.TryGetSvid(out _, out var reason), reason);
        await Poll.UntilAsync(() => _agent.OpenX509Streams == 1, "the stream open at the agent");

        // gRPC reports the cancelled stream as RpcException(Cancelled): the loop must still end cleanly.
        watcher.Dispose();
        await watcher.Loop.WaitAsync(TimeSpan.FromMinutes(1));

        Assert.True(watcher.Loop.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Disposing_a_jwt_identity_during_a_fetch_ends_its_loop_without_a_fault()
    {
        _agent.Hang = true;
        var identity = new SpiffeJwtIdentity(new SpiffeJwtIdentitySettings(_agent.SocketPath, "sts.example.com", null, TimeSpan.Zero) { CallTimeout = TimeSpan.FromMinutes(1) }, _time, NullLogger<SpiffeJwtIdentity>.Instance);
        await Task.Delay(200);

        identity.Dispose();
        await identity.Loop.WaitAsync(TimeSpan.FromMinutes(1));

        Assert.True(identity.Loop.IsCompletedSuccessfully);
    }
}
