using System.Text.Json.Nodes;
using SecretlessProxy.Tests.Identity;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.MintedTokens;

/// <summary>
/// What an RDS IAM login needs around a database listener: a workload identity token file (fake
/// clock, pinned), a WireMock STS for the <c>aws</c> credential, and the <c>AwsRdsAuthToken</c>
/// credential <c>db-login</c> signed with it for the listener's upstream.
/// </summary>
internal sealed class RdsTokenFixture : IDisposable
{
    public const string Region = "eu-west-1";

    private readonly TokenFileIdentityHarness _identity = new();
    private readonly TokenFileIdentityHarness.TestKey _key = TokenFileIdentityHarness.RsaKey();

    public RdsTokenFixture()
    {
        Sts = FakeSts.Start(_identity.Time);
    }

    public FakeSts Sts { get; }

    /// <summary>The proxy's clock: it never moves by itself, so the token's X-Amz-Date is known.</summary>
    public Microsoft.Extensions.Time.Testing.FakeTimeProvider Time => _identity.Time;

    public string WorkloadToken { get; private set; } = string.Empty;

    /// <summary>Writes a valid workload token (or none) and adds Identity and the two credentials to <paramref name="config"/>.</summary>
    public void Configure(TestConfig config, string endpoint, string user, bool writeToken = true)
    {
        if (writeToken)
        {
            WorkloadToken = _identity.Sign(_key, _identity.Claims("https://kubernetes.default.svc", "sts.amazonaws.com", "system:serviceaccount:orders:api"));
            _identity.WriteToken(WorkloadToken);
        }

        config.Set("Identity", new JsonObject { ["Source"] = "TokenFile", ["Path"] = _identity.TokenPath })
            .Credential("aws", new JsonObject
            {
                ["Source"] = "AwsWebIdentity",
                ["RoleArn"] = "arn:aws:iam::123456789012:role/orders-db",
                ["Region"] = Region,
                ["StsUrl"] = Sts.Url,
                ["AllowLoopbackSquatting"] = true,
                ["RetryDelay"] = "00:00:00",
                ["RetryAttempts"] = 0,
            })
            .Credential("db-login", new JsonObject
            {
                ["Source"] = "AwsRdsAuthToken",
                ["SigningCredential"] = "aws",
                ["Endpoint"] = endpoint,
                ["Region"] = Region,
                ["Username"] = user,
            });
    }

    /// <summary>What botocore computes for the keys STS issued first, at the pinned clock.</summary>
    public Task<string> ExpectedTokenAsync(string host, int port, string user)
    {
        var keys = Sts.IssuedKeys[0];
        return Credentials.BotocoreRdsToken.ComputeAsync(host, port, user, Region, Time.GetUtcNow(), keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken);
    }

    /// <summary>Everything that must never be emitted: the workload token and every key STS issued.</summary>
    public IEnumerable<string> Secrets => Sts.Secrets.Append(WorkloadToken).Where(s => s.Length > 0);

    public void Dispose()
    {
        Sts.Dispose();
        _identity.Dispose();
    }
}
