using Xunit;
using SecretlessProxy.Attestation;
using SecretlessProxy.Core;

namespace SecretlessProxy.Tests.Identity;

/// <summary>
/// When a connection's attestation is re-checked: an attestation started at accept is checked again
/// by the first request (the client chose when to send it), one made for a read is that read's
/// answer, and a read that cannot wait never blocks on the pending one.
/// </summary>
public sealed class CallerFeatureTests
{
    private static readonly Caller Attested = new(isKnown: true, uid: 1000, pid: 42, executable: "/usr/bin/allowed", executableSha256: "aa", containerId: null, cgroup: null);
    private static readonly Caller Changed = new(isKnown: true, uid: 1000, pid: null, executable: null, executableSha256: null, containerId: null, cgroup: null);

    private static CallerAttestation Attestation() =>
        new(Attested, 1000, 77, [new SocketHolder(42, 5, 123, "/usr/bin/allowed", default)]);

    [Fact]
    public async Task The_first_request_rechecks_an_attestation_made_at_accept()
    {
        var rechecks = 0;
        var feature = new CallerFeature(
            attest: Attestation,
            recheck: _ => { rechecks++; return CallerAttestation.Fixed(Changed); },
            recheckWanted: () => true,
            attestNow: true,
            attestAsync: () => Task.FromResult(Attestation()));

        var caller = await feature.GetCallerAsync();

        Assert.Equal(1, rechecks);
        Assert.Same(Changed, caller);
    }

    [Fact]
    public async Task An_attestation_made_for_a_read_answers_it_and_the_next_read_rechecks()
    {
        var rechecks = 0;
        var feature = new CallerFeature(
            attest: Attestation,
            recheck: _ => { rechecks++; return CallerAttestation.Fixed(Changed); },
            recheckWanted: () => true,
            attestNow: false,
            attestAsync: () => Task.FromResult(Attestation()));

        Assert.Same(Attested, await feature.GetCallerAsync());
        Assert.Equal(0, rechecks);
        Assert.Same(Changed, await feature.GetCallerAsync());
        Assert.Equal(1, rechecks);
    }

    [Fact]
    public void A_read_that_cannot_wait_attests_itself_instead_of_waiting_for_the_pending_attestation()
    {
        var pending = new TaskCompletionSource<CallerAttestation>();
        var syncAttestations = 0;
        var feature = new CallerFeature(
            attest: () => { syncAttestations++; return Attestation(); },
            recheck: a => a,
            recheckWanted: () => true,
            attestNow: true,
            attestAsync: () => pending.Task);

        // The pending attestation never completes: a blocking wait would hang this test.
        Assert.Same(Attested, feature.Caller);
        Assert.Equal(1, syncAttestations);
    }
}
