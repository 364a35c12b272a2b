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

        var first = cache.GetOrIssue("api.example.com").TargetCertificate;
        Assert.Same(first, cache.GetOrIssue("API.example.com").TargetCertificate);
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
        var second = cache.GetOrIssue("api.example.com").TargetCertificate;
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

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
