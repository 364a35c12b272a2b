using System.Collections.Concurrent;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A WireMock OAuth2 token endpoint that issues a distinct, recognisable token per call, so tests
/// can tell which fetch a request used and scan everything emitted for every issued token.
/// </summary>
public sealed class FakeTokenEndpoint : IDisposable
{
    public const string Path = "/oauth/token";

    private readonly ConcurrentQueue<string> _issued = new();
    private readonly string _marker = Guid.NewGuid().ToString("N")[..10];
    private int _count;

    public FakeTokenEndpoint()
    {
        Server = WireMockFactory.Start();
        Succeed();
    }

    public WireMockServer Server { get; }

    public string TokenUrl => Server.LoopbackUrl() + Path;

    public IReadOnlyCollection<string> IssuedTokens => _issued.ToArray();

    public int TokenRequests => Server.LogEntries.Count(e => e.RequestMessage.Path == Path);

    /// <summary>Answers each call with a new token valid for <paramref name="expiresIn"/> seconds.</summary>
    public void Succeed(int expiresIn = 3600, TimeSpan? delay = null)
    {
        Server.ResetMappings();
        var response = Response.Create()
            .WithStatusCode(200)
            .WithHeader("Content-Type", "application/json")
            .WithBody(_ =>
            {
                var token = "issued-token-" + _marker + "-" + Interlocked.Increment(ref _count);
                _issued.Enqueue(token);
                return "{\"access_token\":\"" + token + "\",\"token_type\":\"Bearer\",\"expires_in\":" + expiresIn + "}";
            });
        if (delay is { } d)
        {
            response = response.WithDelay(d);
        }

        Server.Given(Request.Create().WithPath(Path).UsingPost()).RespondWith(response);
    }

    public void Respond(int status, string body, string contentType = "application/json", TimeSpan? delay = null)
    {
        Server.ResetMappings();
        var response = Response.Create().WithStatusCode(status).WithHeader("Content-Type", contentType).WithBody(body);
        if (delay is { } d)
        {
            response = response.WithDelay(d);
        }

        Server.Given(Request.Create().WithPath(Path).UsingPost()).RespondWith(response);
    }

    /// <summary>Stops answering: connections are refused, like an identity provider that is down.</summary>
    public void GoDown() => Server.Stop();

    public void Dispose() => Server.Dispose();
}
