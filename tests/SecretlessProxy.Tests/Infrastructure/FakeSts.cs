using System.Globalization;
using System.Security.Cryptography;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A WireMock AWS STS answering <c>AssumeRoleWithWebIdentity</c> in the real query-protocol XML shape
/// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html). Each
/// call issues new, recognisable temporary keys, so tests can tell which fetch a request used and
/// scan everything emitted for every secret it handed out (<see cref="Secrets"/>).
/// </summary>
public sealed class FakeSts : IDisposable
{
    public const string Namespace = "https://sts.amazonaws.com/doc/2011-06-15/";

    private readonly List<IssuedKey> _issued = [];
    private readonly string _marker = RandomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 8);
    private readonly TimeProvider _time;
    private int _count;

    private FakeSts(TimeProvider time)
    {
        _time = time;
        Server = WireMockFactory.Start();
    }

    /// <summary>Starts on 127.0.0.1 answering every call with new keys valid for an hour.</summary>
    /// <param name="time">The clock Expiration is computed from: the proxy's (fake) clock.</param>
    public static FakeSts Start(TimeProvider? time = null)
    {
        var sts = new FakeSts(time ?? TimeProvider.System);
        sts.Succeed();
        return sts;
    }

    public WireMockServer Server { get; }

    /// <summary>The endpoint to give as <c>StsUrl</c>.</summary>
    public string Url => Server.LoopbackUrl() + "/";

    /// <summary>Every key issued, in order.</summary>
    public IReadOnlyList<IssuedKey> IssuedKeys
    {
        get
        {
            lock (_issued)
            {
                return _issued.ToArray();
            }
        }
    }

    /// <summary>The secret parts of every issued key (secret access keys and session tokens), for <c>NeverEmit</c>.</summary>
    public IEnumerable<string> Secrets => IssuedKeys.SelectMany(k => new[] { k.SecretAccessKey, k.SessionToken });

    /// <summary>The calls received, in order, with their form decoded.</summary>
    public IReadOnlyList<StsRequest> Requests =>
        Server.LogEntries.OrderBy(e => e.RequestMessage.DateTime).Select(e => new StsRequest(
            e.RequestMessage.Method,
            e.RequestMessage.Path,
            e.RequestMessage.Headers?.ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase) ?? new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase),
            e.RequestMessage.Body ?? string.Empty)).ToArray();

    /// <summary>Answers each call with new keys that expire <paramref name="expiresIn"/> seconds after the clock's now.</summary>
    public void Succeed(int expiresIn = 3600, TimeSpan? delay = null)
    {
        Server.ResetMappings();
        var response = Response.Create()
            .WithStatusCode(200)
            .WithHeader("Content-Type", "text/xml")
            .WithBody(_ => SuccessXml(Issue(expiresIn)));
        if (delay is { } d)
        {
            response = response.WithDelay(d);
        }

        Server.Given(Request.Create().WithPath("/").UsingPost()).RespondWith(response);
    }

    /// <summary>Answers every call with <paramref name="status"/> and <paramref name="body"/> (an STS error document, see <see cref="ErrorXml"/>).</summary>
    public void Fail(int status, string body, string contentType = "text/xml", TimeSpan? delay = null)
    {
        Server.ResetMappings();
        var response = Response.Create().WithStatusCode(status).WithHeader("Content-Type", contentType).WithBody(body);
        if (delay is { } d)
        {
            response = response.WithDelay(d);
        }

        Server.Given(Request.Create().WithPath("/").UsingPost()).RespondWith(response);
    }

    /// <summary>
    /// Answers the next <paramref name="times"/> calls with <paramref name="status"/> and <paramref name="body"/>,
    /// then whatever was configured before (<see cref="Succeed"/> by default): a flaky endpoint.
    /// </summary>
    public void FailFirst(int times, int status, string body, string contentType = "text/xml")
    {
        var scenario = "fail-first-" + Guid.NewGuid().ToString("N");
        for (var i = 0; i < times; i++)
        {
            var mapping = Server.Given(Request.Create().WithPath("/").UsingPost()).AtPriority(-1).InScenario(scenario);
            if (i > 0)
            {
                mapping = mapping.WhenStateIs("failed-" + i);
            }

            mapping.WillSetStateTo("failed-" + (i + 1))
                .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", contentType).WithBody(body));
        }
    }

    /// <summary>Stops answering: connections are refused, like an STS endpoint that is unreachable.</summary>
    public void GoDown() => Server.Stop();

    /// <summary>The query protocol's error document, as STS sends it.</summary>
    public static string ErrorXml(string code, string message, string type = "Sender") =>
        "<ErrorResponse xmlns=\"" + Namespace + "\">\n" +
        "  <Error>\n" +
        "    <Type>" + type + "</Type>\n" +
        "    <Code>" + code + "</Code>\n" +
        "    <Message>" + System.Security.SecurityElement.Escape(message) + "</Message>\n" +
        "  </Error>\n" +
        "  <RequestId>" + Guid.NewGuid() + "</RequestId>\n" +
        "</ErrorResponse>\n";

    private IssuedKey Issue(int expiresIn)
    {
        var n = Interlocked.Increment(ref _count);
        var key = new IssuedKey(
            ("ASIA" + _marker + n.ToString("D8", CultureInfo.InvariantCulture))[..20],
            "fake/Secret+" + RandomString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 28),
            "FwoGZXIvYXdzEFake" + RandomString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 200) + "==",
            DateTimeOffset.FromUnixTimeSeconds(_time.GetUtcNow().ToUnixTimeSeconds() + expiresIn));
        lock (_issued)
        {
            _issued.Add(key);
        }

        return key;
    }

    private static string SuccessXml(IssuedKey key) =>
        "<AssumeRoleWithWebIdentityResponse xmlns=\"" + Namespace + "\">\n" +
        "  <AssumeRoleWithWebIdentityResult>\n" +
        "    <SubjectFromWebIdentityToken>system:serviceaccount:jobs:exporter</SubjectFromWebIdentityToken>\n" +
        "    <Audience>sts.amazonaws.com</Audience>\n" +
        "    <AssumedRoleUser>\n" +
        "      <Arn>arn:aws:sts::123456789012:assumed-role/exporter/secretless-proxy</Arn>\n" +
        "      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:secretless-proxy</AssumedRoleId>\n" +
        "    </AssumedRoleUser>\n" +
        "    <Credentials>\n" +
        "      <SessionToken>" + key.SessionToken + "</SessionToken>\n" +
        "      <SecretAccessKey>" + key.SecretAccessKey + "</SecretAccessKey>\n" +
        "      <Expiration>" + key.Expiration.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture) + "</Expiration>\n" +
        "      <AccessKeyId>" + key.AccessKeyId + "</AccessKeyId>\n" +
        "    </Credentials>\n" +
        "    <Provider>oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE</Provider>\n" +
        "  </AssumeRoleWithWebIdentityResult>\n" +
        "  <ResponseMetadata>\n" +
        "    <RequestId>" + Guid.NewGuid() + "</RequestId>\n" +
        "  </ResponseMetadata>\n" +
        "</AssumeRoleWithWebIdentityResponse>\n";

    private static string RandomString(string alphabet, int length) =>
        string.Create(length, alphabet, static (span, a) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = a[RandomNumberGenerator.GetInt32(a.Length)];
            }
        });

    public void Dispose() => Server.Dispose();

    /// <summary>Temporary keys as STS issued them.</summary>
    public sealed record IssuedKey(string AccessKeyId, string SecretAccessKey, string SessionToken, DateTimeOffset Expiration);

    /// <summary>One call STS received.</summary>
    public sealed record StsRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body)
    {
        /// <summary>The form parameters (application/x-www-form-urlencoded), decoded.</summary>
        public IReadOnlyDictionary<string, string> Form =>
            Body.Split('&', StringSplitOptions.RemoveEmptyEntries)
                .Select(p => p.Split('=', 2))
                .ToDictionary(p => Uri.UnescapeDataString(p[0].Replace('+', ' ')), p => p.Length > 1 ? Uri.UnescapeDataString(p[1].Replace('+', ' ')) : string.Empty, StringComparer.Ordinal);
    }
}
