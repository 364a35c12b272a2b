using SecretlessProxy.Core;
using SecretlessProxy.Credentials;

namespace SecretlessProxy.Fleet;

/// <summary>
/// Stands in for a token endpoint: answers at once with a value of its kind's lifetime, and counts
/// every call by the virtual second it arrived in. Shared by every sidecar's credential of its kind
/// (the counts are the issuer's view of the whole fleet).
/// </summary>
internal sealed class CountingIssuer : ICredentialSource
{
    // One secret for all: the bench measures when values are fetched, not what they are.
    private const string Secret = "fleet-bench-not-a-secret";

    private readonly TimeProvider _time;
    private readonly DateTimeOffset _origin;
    private readonly TimeSpan _lifetime;
    private readonly int[] _perSecond;

    public CountingIssuer(CredentialKind kind, TimeProvider time, DateTimeOffset origin, int[] perSecond)
    {
        Kind = kind.Name;
        _lifetime = kind.Lifetime;
        _time = time;
        _origin = origin;
        _perSecond = perSecond;
    }

    public string Kind { get; }

    public Task<Credential> FetchAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var second = (int)((now - _origin).Ticks / TimeSpan.TicksPerSecond);
        Interlocked.Increment(ref _perSecond[second]);
        return Task.FromResult(new Credential(Secret, null, now, now + _lifetime));
    }
}
