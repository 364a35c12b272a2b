using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Time.Testing;
using SecretlessProxy.Certificates;
using Xunit;

namespace SecretlessProxy.Tests.Certificates;

public sealed class LeafCertificateCacheTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("secretless-ca-test-").FullName;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    [Fact]
    public void Leaf_names_only_its_host_is_signed_by_the_local_ca_and_is_reissued_before_expiry()
    {
        using var ca = LocalCertificateAuthority.LoadOrCreate(_directory, _time);
        using var cache = new LeafCertificateCache(ca, _time, TimeSpan.FromHours(24));

        using var firstLease = cache.Rent("api.example.com");
        using var againLease = cache.Rent("API.example.com.");
        var first = firstLease.Context.TargetCertificate;
        Assert.Same(first, againLease.Context.TargetCertificate);
        Assert.Equal("api.example.com", first.GetNameInfo(X509NameType.DnsName, forIssuer: false));
        Assert.Equal(ca.Certificate.Subject, first.Issuer);
        Assert.NotNull(first.GetECDsaPublicKey());
        Assert.True(first.NotAfter.ToUniversalTime() <= _time.GetUtcNow().AddHours(24).UtcDateTime.AddSeconds(1));

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(X509CertificateLoader.LoadCertificate(ca.Certificate.RawData));
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
        Assert.True(chain.Build(first));

        // Past 80% of its life, the next use mints a new one.
        _time.Advance(TimeSpan.FromHours(20));
        using var secondLease = cache.Rent("api.example.com");
        var second = secondLease.Context.TargetCertificate;
        Assert.NotEqual(first.SerialNumber, second.SerialNumber);
        Assert.True(second.NotAfter > first.NotAfter);
    }

    [Fact]
    public void A_created_ca_is_loaded_again_from_its_directory_and_from_cert_and_key_files()
    {
        string pem;
        using (var created = LocalCertificateAuthority.LoadOrCreate(_directory, _time))
        {
            pem = created.ExportCertificatePem();
        }

        using var reloaded = LocalCertificateAuthority.LoadOrCreate(_directory, _time);
        using var mounted = LocalCertificateAuthority.Load(Path.Combine(_directory, "ca.crt"), Path.Combine(_directory, "ca.key"));

        Assert.Equal(pem, reloaded.ExportCertificatePem());
        Assert.Equal(pem, mounted.ExportCertificatePem());
        Assert.DoesNotContain("PRIVATE", pem);
        using var leaf = mounted.IssueLeaf("10.0.0.1", _time.GetUtcNow(), _time.GetUtcNow().AddHours(1));
        Assert.Contains("10.0.0.1", leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateIPAddresses().Select(a => a.ToString()));
    }

    [Fact]
    public void A_broken_key_file_is_reported_without_its_content()
    {
        File.WriteAllText(Path.Combine(_directory, "ca.crt"), "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
        File.WriteAllText(Path.Combine(_directory, "ca.key"), "top-secret-key-material");

        var error = Assert.ThrowsAny<Exception>(() => LocalCertificateAuthority.LoadOrCreate(_directory, _time));

        Assert.Contains("cannot load the local CA", error.Message);
        Assert.DoesNotContain("top-secret-key-material", error.ToString());
    }

    [Fact]
    public void The_cache_keeps_at_most_its_bound_least_recently_used_out_first()
    {
        using var ca = LocalCertificateAuthority.LoadOrCreate(_directory, _time);
        using var cache = new LeafCertificateCache(ca, _time, TimeSpan.FromHours(24), maxCertificates: 3);

        string Serial(string host)
        {
            using var lease = cache.Rent(host);
            return lease.Context.TargetCertificate.SerialNumber;
        }

        var a = Serial("a.example.test");
        Serial("b.example.test");
        Serial("c.example.test");
        Assert.Equal(a, Serial("a.example.test"));
        Serial("d.example.test");

        // b was the least recently used: gone; a (used again) is still the same leaf.
        Assert.Equal(3, cache.Count);
        Assert.Equal(1, cache.Evictions);
        Assert.Equal(a, Serial("a.example.test"));
        for (var i = 0; i < 50; i++)
        {
            Serial("host-" + i + ".example.test");
            Assert.True(cache.Count <= 3);
        }

        Assert.Equal(51, cache.Evictions);
        Assert.NotEqual(a, Serial("a.example.test"));
    }

    [Fact]
    public void An_evicted_leaf_is_disposed_only_when_its_last_lease_ends()
    {
        using var ca = LocalCertificateAuthority.LoadOrCreate(_directory, _time);
        using var cache = new LeafCertificateCache(ca, _time, TimeSpan.FromHours(24), maxCertificates: 1);

        var held = cache.Rent("held.example.test");
        var certificate = held.Context.TargetCertificate;
        using (cache.Rent("other.example.test"))
        {
        }

        // Evicted, but a tunnel still presents it: alive, key and all.
        Assert.Equal(1, cache.Evictions);
        Assert.NotEqual(IntPtr.Zero, certificate.Handle);
        Assert.NotNull(certificate.GetECDsaPrivateKey());

        held.Dispose();
        held.Dispose();
        Assert.Equal(IntPtr.Zero, certificate.Handle);

        // A renewal hands the old leaf to whoever still holds it, the same way.
        var renewing = cache.Rent("other.example.test");
        var old = renewing.Context.TargetCertificate;
        _time.Advance(TimeSpan.FromHours(20));
        using (var renewed = cache.Rent("other.example.test"))
        {
            Assert.NotEqual(old.SerialNumber, renewed.Context.TargetCertificate.SerialNumber);
        }

        Assert.NotEqual(IntPtr.Zero, old.Handle);
        renewing.Dispose();
        Assert.Equal(IntPtr.Zero, old.Handle);
    }

    [Fact]
    public void Concurrent_first_uses_of_one_host_issue_one_leaf()
    {
        using var ca = LocalCertificateAuthority.LoadOrCreate(_directory, _time);
        using var cache = new LeafCertificateCache(ca, _time, TimeSpan.FromHours(24), maxCertificates: 4);
        using var start = new ManualResetEventSlim();
        var serials = new string[16];

        // Threads, not pool tasks: all of them blocked on the start signal must not starve the pool.
        var threads = Enumerable.Range(0, serials.Length).Select(i => new Thread(() =>
        {
            start.Wait();
            using var lease = cache.Rent("burst.example.test");
            serials[i] = lease.Context.TargetCertificate.SerialNumber;
        })).ToList();
        threads.ForEach(t => t.Start());
        start.Set();
        threads.ForEach(t => t.Join());

        Assert.Single(serials.Distinct());
        Assert.Equal(1, cache.Count);
    }

    [Theory]
    [InlineData("localhost;.example.test")]
    [InlineData("CN=x,O=y")]
    [InlineData("a b")]
    [InlineData("")]
    public void A_name_that_is_not_a_host_never_becomes_a_certificate(string host)
    {
        using var ca = LocalCertificateAuthority.LoadOrCreate(_directory, _time);
        using var cache = new LeafCertificateCache(ca, _time, TimeSpan.FromHours(24));

        Assert.Throws<ArgumentException>(() => cache.Rent(host));
        Assert.Throws<ArgumentException>(() => ca.IssueLeaf(host, _time.GetUtcNow(), _time.GetUtcNow().AddHours(1)));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void The_subject_and_san_hold_exactly_the_host_and_a_long_name_is_named_by_its_san_alone()
    {
        using var ca = LocalCertificateAuthority.LoadOrCreate(_directory, _time);
        using var leaf = ca.IssueLeaf("Api.Example.Test.", _time.GetUtcNow(), _time.GetUtcNow().AddHours(1));
        Assert.Equal("CN=api.example.test", leaf.Subject);
        Assert.Equal(new[] { "api.example.test" }, leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames());

        var label63 = new string('a', 63);
        var longName = string.Join('.', Enumerable.Repeat(label63, 3)) + ".example";
        using var longLeaf = ca.IssueLeaf(longName, _time.GetUtcNow(), _time.GetUtcNow().AddHours(1));
        Assert.Equal(string.Empty, longLeaf.Subject);
        var san = longLeaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.True(san.Critical);
        Assert.Equal(new[] { longName }, san.EnumerateDnsNames());

        using var v6 = ca.IssueLeaf("0:0::1", _time.GetUtcNow(), _time.GetUtcNow().AddHours(1));
        Assert.Equal(new[] { "::1" }, v6.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateIPAddresses().Select(a => a.ToString()));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
