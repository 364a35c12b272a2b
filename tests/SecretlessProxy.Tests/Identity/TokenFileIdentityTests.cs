using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Xunit;
using SecretlessProxy.Tests.Infrastructure;
using SecretlessProxy.Identity;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Tests.Identity;

/// <summary>
/// The workload identity token file: read, verified against an issuer served on 127.0.0.1, rotated
/// on disk, and expired by the clock.
/// </summary>
public sealed class TokenFileIdentityTests : IDisposable
{
    private const string Issuer = "https://kubernetes.default.svc.cluster.local";
    private const string Audience = "secretless-proxy";

    private readonly TokenFileIdentityHarness _h = new();
    private readonly string _subject = "system:serviceaccount:jobs:exporter-" + Guid.NewGuid().ToString("N")[..6];

    public void Dispose() => _h.Dispose();

    private TokenFileIdentity StartVerifying() => _h.Start(Issuer, Audience, _h.JwksUrl);

    [Fact]
    public async Task Valid_token_yields_its_claims_including_kubernetes_namespace_and_service_account()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        var claims = _h.Claims(Issuer, Audience, _subject, ns: "payments", serviceAccount: "ledger");
        var token = _h.Sign(key, claims);
        _h.WriteToken(token);
        var identity = StartVerifying();

        var status = await _h.GetAsync(identity);

        Assert.True(status.IsValid, status.FailureReason);
        var id = status.Identity!;
        Assert.Equal(token, id.Token);
        Assert.Equal(_subject, id.Subject);
        Assert.Equal(Issuer, id.Issuer);
        Assert.Equal(new[] { Audience }, id.Audiences);
        Assert.Equal("payments", id.KubernetesNamespace);
        Assert.Equal("ledger", id.ServiceAccount);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(claims["exp"]!.GetValue<long>()), id.ExpiresAt);
        Assert.True(id.Verified);
        Assert.DoesNotContain(token, id.ToString());

        // Accepted once, logged once, however often it is asked for.
        for (var i = 0; i < 5; i++)
        {
            _h.AdvancePastStatInterval();
            Assert.Same(id, (await _h.GetAsync(identity)).Identity);
        }

        var accepted = Assert.Single(_h.LogsWithEvent(EventIds.IdentityTokenAccepted));
        Assert.Equal(LogLevel.Information, accepted.Level);
        Assert.Contains(_subject, accepted.Message);
        Assert.Equal(1, _h.JwksRequests);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Ecdsa_token_with_audience_array_and_no_kubernetes_claim_takes_namespace_from_subject()
    {
        var key = TokenFileIdentityHarness.EcKey();
        _h.ServeJwks(TokenFileIdentityHarness.RsaKey(), key);
        var claims = _h.Claims(Issuer, Audience, "system:serviceaccount:batch:nightly-export");
        claims.Remove("kubernetes.io");
        claims["aud"] = new JsonArray("https://other.example", Audience);
        _h.WriteToken(_h.Sign(key, claims));

        var status = await _h.GetAsync(StartVerifying());

        Assert.True(status.IsValid, status.FailureReason);
        Assert.Equal("batch", status.Identity!.KubernetesNamespace);
        Assert.Equal("nightly-export", status.Identity.ServiceAccount);
        Assert.Equal(new[] { "https://other.example", Audience }, status.Identity.Audiences);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Token_from_another_issuer_is_refused_without_fetching_keys()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        _h.WriteToken(_h.Sign(key, _h.Claims("https://evil.example", Audience, _subject)));

        var status = await _h.GetAsync(StartVerifying());

        Assert.False(status.IsValid);
        Assert.Contains("issuer 'https://evil.example' is not the configured '" + Issuer + "'", status.FailureReason);
        Assert.Equal(0, _h.JwksRequests);
        var rejected = Assert.Single(_h.LogsWithEvent(EventIds.IdentityTokenRejected));
        Assert.Equal(LogLevel.Warning, rejected.Level);
        Assert.Contains(status.FailureReason!, rejected.Message);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Token_for_another_audience_is_refused()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, "vault", _subject)));

        var status = await _h.GetAsync(StartVerifying());

        Assert.False(status.IsValid);
        Assert.Contains("audience does not include '" + Audience + "'", status.FailureReason);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Identity_expires_at_exp_by_the_clock_alone_without_a_file_change_whatever_the_skew()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        var claims = _h.Claims(Issuer, Audience, _subject);
        _h.WriteToken(_h.Sign(key, claims));
        var skew = TimeSpan.FromSeconds(20);
        var identity = _h.Start(Issuer, Audience, _h.JwksUrl, skew);
        var exp = DateTimeOffset.FromUnixTimeSeconds(claims["exp"]!.GetValue<long>());
        var lastWrite = File.GetLastWriteTimeUtc(_h.TokenPath);

        Assert.True((await _h.GetAsync(identity)).IsValid);

        // Valid one tick before exp, invalid at exp: the clock skew applies to nbf only, so an
        // expired token is never forwarded. Within the same stat interval, since expiry is
        // checked on every call.
        _h.Advance(exp - TimeSpan.FromTicks(1) - _h.Time.GetUtcNow());
        Assert.True((await _h.GetAsync(identity)).IsValid);
        _h.Advance(TimeSpan.FromTicks(1));
        var expired = await _h.GetAsync(identity);

        Assert.False(expired.IsValid);
        Assert.Contains("identity token expired at " + exp.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'"), expired.FailureReason);
        Assert.Equal(lastWrite, File.GetLastWriteTimeUtc(_h.TokenPath));
        Assert.Equal(1, _h.JwksRequests);

        _h.AdvancePastStatInterval();
        Assert.Equal(expired.FailureReason, (await _h.GetAsync(identity)).FailureReason);
        Assert.Single(_h.LogsWithEvent(EventIds.IdentityTokenRejected));
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Token_not_yet_valid_becomes_valid_when_its_time_comes()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        var claims = _h.Claims(Issuer, Audience, _subject);
        var nbf = _h.Time.GetUtcNow().AddMinutes(5);
        claims["nbf"] = nbf.ToUnixTimeSeconds();
        _h.WriteToken(_h.Sign(key, claims));
        var identity = _h.Start(Issuer, Audience, _h.JwksUrl, TimeSpan.FromSeconds(10));

        var early = await _h.GetAsync(identity);
        Assert.False(early.IsValid);
        Assert.Contains("not valid before", early.FailureReason);

        _h.Advance(TimeSpan.FromMinutes(5));
        Assert.True((await _h.GetAsync(identity)).IsValid);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Token_signed_by_another_key_with_the_same_kid_does_not_verify()
    {
        var real = TokenFileIdentityHarness.RsaKey("k8s-1");
        var impostor = TokenFileIdentityHarness.RsaKey("k8s-1");
        _h.ServeJwks(real);
        _h.WriteToken(_h.Sign(impostor, _h.Claims(Issuer, Audience, _subject)));

        var status = await _h.GetAsync(StartVerifying());

        Assert.False(status.IsValid);
        Assert.Contains("signature does not verify against the keys from " + _h.JwksUrl, status.FailureReason);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Unsigned_token_is_refused_when_verifying()
    {
        _h.ServeJwks(TokenFileIdentityHarness.RsaKey());
        _h.WriteToken(_h.Unsigned(_h.Claims(Issuer, Audience, _subject)));

        var status = await _h.GetAsync(StartVerifying());

        Assert.False(status.IsValid);
        Assert.Contains("not signed", status.FailureReason);
        Assert.Equal(0, _h.JwksRequests);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Unknown_kid_refetches_keys_once_and_accepts_the_rotated_key_but_a_flood_cannot_hammer_the_issuer()
    {
        var first = TokenFileIdentityHarness.RsaKey();
        var second = TokenFileIdentityHarness.EcKey();
        _h.ServeJwks(first);
        _h.WriteToken(_h.Sign(first, _h.Claims(Issuer, Audience, _subject)));
        var identity = StartVerifying();
        Assert.True((await _h.GetAsync(identity)).IsValid);
        Assert.Equal(1, _h.JwksRequests);

        // The issuer rotates its key and the kubelet the token.
        _h.ServeJwks(second);
        _h.Advance(SigningKeySource.MinRefetchInterval);
        var rotatedSubject = _subject + "-rotated";
        _h.WriteToken(_h.Sign(second, _h.Claims(Issuer, Audience, rotatedSubject)));
        _h.AdvancePastStatInterval();
        var rotated = await _h.GetAsync(identity);
        Assert.True(rotated.IsValid, rotated.FailureReason);
        Assert.Equal(rotatedSubject, rotated.Identity!.Subject);
        Assert.Equal(2, _h.JwksRequests);

        // Tokens with kids the issuer never had, one after another: no more than one fetch per interval.
        for (var i = 0; i < 10; i++)
        {
            _h.WriteToken(_h.Sign(TokenFileIdentityHarness.EcKey("bogus-" + i), _h.Claims(Issuer, Audience, _subject + "-" + i)));
            _h.AdvancePastStatInterval();
            var status = await _h.GetAsync(identity);
            Assert.False(status.IsValid);
            Assert.Contains("signature does not verify", status.FailureReason);
            Assert.Contains("bogus-" + i, status.FailureReason);
        }

        Assert.Equal(2, _h.JwksRequests);
        _h.Advance(SigningKeySource.MinRefetchInterval);
        await _h.GetAsync(identity);
        Assert.Equal(3, _h.JwksRequests);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Rewritten_file_is_picked_up_after_the_stat_interval()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, Audience, _subject)));
        var identity = StartVerifying();
        Assert.Equal(_subject, (await _h.GetAsync(identity)).Identity!.Subject);

        // A longer subject makes the new file differ in length too: two writes within one
        // file-system timestamp tick would otherwise look alike to a stat (a real rotation is minutes apart).
        var next = _subject + "-next-generation";
        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, Audience, next)));

        Assert.Equal(_subject, (await _h.GetAsync(identity)).Identity!.Subject);
        _h.AdvancePastStatInterval();
        Assert.Equal(next, (await _h.GetAsync(identity)).Identity!.Subject);
        Assert.Equal(2, _h.LogsWithEvent(EventIds.IdentityTokenAccepted).Count);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Kubernetes_projected_volume_symlink_swap_is_picked_up()
    {
        // The layout kubelet writes: token -> ..data/token, ..data -> ..<timestamp>/, swapped with rename(2).
        var volume = Path.Combine(_h.Directory, "volume");
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        Directory.CreateDirectory(Path.Combine(volume, "..2026_11_23_v1"));
        File.WriteAllText(Path.Combine(volume, "..2026_11_23_v1", "token"), _h.Sign(key, _h.Claims(Issuer, Audience, _subject)));
        Directory.CreateSymbolicLink(Path.Combine(volume, "..data"), "..2026_11_23_v1");
        File.CreateSymbolicLink(Path.Combine(volume, "token"), "..data/token");
        var identity = _h.Start(Issuer, Audience, _h.JwksUrl, path: Path.Combine(volume, "token"));
        Assert.Equal(_subject, (await _h.GetAsync(identity)).Identity!.Subject);

        var next = _subject + "-after-swap";
        Directory.CreateDirectory(Path.Combine(volume, "..2026_11_23_v2"));
        File.WriteAllText(Path.Combine(volume, "..2026_11_23_v2", "token"), _h.Sign(key, _h.Claims(Issuer, Audience, next)));
        Directory.CreateSymbolicLink(Path.Combine(volume, "..data_tmp"), "..2026_11_23_v2");
        Assert.Equal(0, Rename(Path.Combine(volume, "..data_tmp"), Path.Combine(volume, "..data")));
        Directory.Delete(Path.Combine(volume, "..2026_11_23_v1"), recursive: true);

        _h.AdvancePastStatInterval();
        var status = await _h.GetAsync(identity);
        Assert.True(status.IsValid, status.FailureReason);
        Assert.Equal(next, status.Identity!.Subject);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Missing_file_is_a_reason_and_a_file_that_appears_later_is_used()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        var identity = StartVerifying();

        var missing = await _h.GetAsync(identity);
        Assert.False(missing.IsValid);
        Assert.Contains(_h.TokenPath, missing.FailureReason);
        Assert.Contains("does not exist", missing.FailureReason);
        _h.AdvancePastStatInterval();
        Assert.Equal(missing.FailureReason, (await _h.GetAsync(identity)).FailureReason);
        Assert.Single(_h.LogsWithEvent(EventIds.IdentityTokenRejected));

        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, Audience, _subject)));
        _h.AdvancePastStatInterval();
        Assert.True((await _h.GetAsync(identity)).IsValid);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Garbage_file_is_not_a_jwt()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        var garbage = "not-a-token-" + Guid.NewGuid().ToString("N");
        File.WriteAllText(_h.TokenPath, garbage);
        var identity = StartVerifying();

        var status = await _h.GetAsync(identity);
        Assert.False(status.IsValid);
        Assert.Contains("identity token is not a JWT", status.FailureReason);
        Assert.DoesNotContain(garbage, status.FailureReason);

        // Three dot-separated parts that are not Base64url JSON.
        File.WriteAllText(_h.TokenPath, "e30.%%%." + garbage);
        _h.AdvancePastStatInterval();
        var threeParts = await _h.GetAsync(identity);
        Assert.Contains("identity token is not a JWT", threeParts.FailureReason);
        Assert.All(_h.Logs.Entries, e => Assert.DoesNotContain(garbage, e.AllText()));
        Assert.Equal(0, _h.JwksRequests);
    }

    [Fact]
    public async Task Keys_endpoint_down_is_a_reason_and_a_later_call_retries()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(503, "{\"error\":\"down for maintenance\"}");
        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, Audience, _subject)));
        var identity = StartVerifying();

        var down = await _h.GetAsync(identity);
        Assert.False(down.IsValid);
        Assert.StartsWith("could not fetch signing keys from " + _h.JwksUrl, down.FailureReason);
        Assert.Contains("503", down.FailureReason);
        Assert.DoesNotContain("maintenance", down.FailureReason);
        var failed = Assert.Single(_h.LogsWithEvent(EventIds.IdentityKeysFetchFailed));
        Assert.Equal(LogLevel.Warning, failed.Level);

        // Garbage where the keys should be.
        _h.ServeJwks(200, "<html>gateway</html>");
        _h.Advance(SigningKeySource.MaxFailureBackoff);
        var garbage = await _h.GetAsync(identity);
        Assert.StartsWith("could not fetch signing keys from " + _h.JwksUrl, garbage.FailureReason);
        Assert.Contains("not JSON", garbage.FailureReason);

        // Within the back-off the issuer is left alone.
        var requests = _h.JwksRequests;
        _h.AdvancePastStatInterval();
        await _h.GetAsync(identity);
        Assert.Equal(requests, _h.JwksRequests);

        _h.ServeJwks(key);
        _h.Advance(SigningKeySource.MaxFailureBackoff);
        var up = await _h.GetAsync(identity);
        Assert.True(up.IsValid, up.FailureReason);
        Assert.Single(_h.LogsWithEvent(EventIds.IdentityKeysFetched));
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Unreachable_keys_endpoint_is_a_reason_not_a_crash()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, Audience, _subject)));
        var closed = new Uri("http://127.0.0.1:" + WireMockFactory.FreePort() + "/keys");
        var identity = _h.Start(Issuer, Audience, closed);

        var status = await _h.GetAsync(identity);

        Assert.False(status.IsValid);
        Assert.StartsWith("could not fetch signing keys from " + closed, status.FailureReason);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Keys_are_discovered_from_the_issuer_alone()
    {
        var key = TokenFileIdentityHarness.EcKey();
        _h.ServeJwks(key);
        _h.ServeDiscovery(_h.ServerIssuer, _h.JwksUrl.ToString());
        _h.WriteToken(_h.Sign(key, _h.Claims(_h.ServerIssuer, Audience, _subject)));
        var identity = _h.Start(_h.ServerIssuer, audience: null, jwksUrl: null);

        var status = await _h.GetAsync(identity);

        Assert.True(status.IsValid, status.FailureReason);
        Assert.True(status.Identity!.Verified);
        Assert.Equal(1, _h.DiscoveryRequests);
        Assert.Equal(1, _h.JwksRequests);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Discovery_document_for_another_issuer_is_refused()
    {
        var key = TokenFileIdentityHarness.EcKey();
        _h.ServeJwks(key);
        _h.ServeDiscovery("https://someone-else.example", _h.JwksUrl.ToString());
        _h.WriteToken(_h.Sign(key, _h.Claims(_h.ServerIssuer, Audience, _subject)));

        var status = await _h.GetAsync(_h.Start(_h.ServerIssuer, audience: null, jwksUrl: null));

        Assert.False(status.IsValid);
        Assert.StartsWith("could not fetch signing keys from " + _h.ServerIssuer + TokenFileIdentityHarness.DiscoveryPath, status.FailureReason);
        Assert.Equal(0, _h.JwksRequests);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Without_verification_the_token_is_parsed_but_not_trusted_and_expiry_still_counts()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        var claims = _h.Claims("https://anyone.example", "anything", _subject);
        _h.WriteToken(_h.Sign(key, claims));
        var identity = _h.Start(issuer: null, audience: null, jwksUrl: null, clockSkew: TimeSpan.Zero);

        var status = await _h.GetAsync(identity);

        Assert.True(status.IsValid, status.FailureReason);
        Assert.False(status.Identity!.Verified);
        Assert.Equal(_subject, status.Identity.Subject);
        Assert.Equal("jobs", status.Identity.KubernetesNamespace);
        Assert.Equal("exporter", status.Identity.ServiceAccount);

        _h.Advance(DateTimeOffset.FromUnixTimeSeconds(claims["exp"]!.GetValue<long>()) - _h.Time.GetUtcNow() + TimeSpan.FromSeconds(1));
        var expired = await _h.GetAsync(identity);
        Assert.False(expired.IsValid);
        Assert.Contains("expired at", expired.FailureReason);

        // A freshly written token that is already expired is refused on reading, too.
        _h.WriteToken(_h.Sign(key, _h.Claims("https://anyone.example", "anything", _subject + "-stale")));
        _h.Advance(TimeSpan.FromHours(2));
        Assert.Contains("expired at", (await _h.GetAsync(identity)).FailureReason);

        File.WriteAllText(_h.TokenPath, "garbage");
        _h.AdvancePastStatInterval();
        Assert.Contains("is not a JWT", (await _h.GetAsync(identity)).FailureReason);
        Assert.Empty(_h.Server.LogEntries);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Concurrent_calls_on_a_cold_start_share_one_key_fetch()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, Audience, _subject)));
        var identity = StartVerifying();
        using var start = new ManualResetEventSlim();

        var calls = Enumerable.Range(0, 200).Select(_ => Task.Run(async () =>
        {
            start.Wait();
            return await _h.GetAsync(identity);
        })).ToArray();
        start.Set();
        var statuses = await Task.WhenAll(calls);

        Assert.All(statuses, s => Assert.True(s.IsValid, s.FailureReason));
        Assert.Single(statuses.Select(s => s.Identity).Distinct());
        Assert.Equal(1, _h.JwksRequests);
        Assert.Single(_h.LogsWithEvent(EventIds.IdentityTokenAccepted));
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task A_cancelled_caller_does_not_cancel_the_refresh_for_others_and_dispose_keeps_the_last_answer()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, Audience, _subject)));
        var identity = StartVerifying();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => identity.GetAsync(new CancellationToken(canceled: true)).AsTask());
        var valid = await _h.GetAsync(identity);
        Assert.True(valid.IsValid, valid.FailureReason);
        Assert.Equal(1, _h.JwksRequests);

        // A request racing a configuration reload still gets an answer, not an exception.
        identity.Dispose();
        _h.AdvancePastStatInterval();
        Assert.Same(valid.Identity, (await _h.GetAsync(identity)).Identity);
        _h.AssertNothingLeaked();
    }

    [Fact]
    public async Task Cached_answer_costs_no_allocation()
    {
        var key = TokenFileIdentityHarness.RsaKey();
        _h.ServeJwks(key);
        _h.WriteToken(_h.Sign(key, _h.Claims(Issuer, Audience, _subject)));
        var identity = StartVerifying();
        Assert.True((await _h.GetAsync(identity)).IsValid);

        CountValid(identity, 100);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var valid = CountValid(identity, 10_000);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(10_000, valid);
        Assert.Equal(0, allocated);
        _h.AssertNothingLeaked();
    }

    private static int CountValid(TokenFileIdentity identity, int calls)
    {
        var valid = 0;
        for (var i = 0; i < calls; i++)
        {
            var pending = identity.GetAsync(CancellationToken.None);
            if (pending.IsCompletedSuccessfully && pending.Result.IsValid)
            {
                valid++;
            }
        }

        return valid;
    }

    // File.Move refuses a symlink that points at a directory; kubelet uses rename(2) directly.
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename(string oldPath, string newPath);
}
