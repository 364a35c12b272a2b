using System.Collections.Concurrent;
using System.Globalization;
using SecretlessProxy.Core;

namespace SecretlessProxy.Runtime;

/// <summary>
/// What each credential was actually used for since the proxy started: a count and the last use
/// per credential, policy, listener, destination and caller, fed by <see cref="AccessPipeline"/>'s
/// one record of every access and read by <c>GET /inventory</c>. Bounded: past
/// <see cref="MaxEntries"/> distinct combinations a new one is only counted in <see cref="NotRecorded"/>.
/// </summary>
internal sealed class CredentialUseLog
{
    /// <summary>Distinct (credential, policy, listener, destination, caller) combinations kept: a few hundred KB at most.</summary>
    public const int MaxEntries = 4096;

    private readonly ConcurrentDictionary<Key, Counter> _uses = new();
    private long _notRecorded;

    public CredentialUseLog(DateTimeOffset since)
    {
        Since = since;
    }

    /// <summary>When counting started (the proxy's start).</summary>
    public DateTimeOffset Since { get; }

    /// <summary>Uses of combinations beyond <see cref="MaxEntries"/>, counted but not itemised.</summary>
    public long NotRecorded => Interlocked.Read(ref _notRecorded);

    /// <summary>Counts one access that carried <paramref name="credential"/>.</summary>
    public void Record(string credential, string policy, string listener, in RequestDestination destination, Caller caller, string? identity, DateTimeOffset at)
    {
        var where = destination.Scheme + "://" + destination.Host + ":" + destination.Port.ToString(CultureInfo.InvariantCulture) + (destination.IsDatabase ? destination.Path : string.Empty);
        var who = caller.Executable ?? (caller.Uid is { } uid ? "uid " + uid.ToString(CultureInfo.InvariantCulture) : "unknown");
        var key = new Key(credential, policy, listener, where, who, identity);
        if (!_uses.TryGetValue(key, out var counter))
        {
            if (_uses.Count >= MaxEntries)
            {
                Interlocked.Increment(ref _notRecorded);
                return;
            }

            counter = _uses.GetOrAdd(key, static _ => new Counter());
        }

        counter.Add(at);
    }

    /// <summary>Every recorded combination, in no particular order.</summary>
    public IReadOnlyList<CredentialUse> Uses() =>
        _uses.Select(u => new CredentialUse(u.Key.Credential, u.Key.Policy, u.Key.Listener, u.Key.Destination, u.Key.Caller, u.Key.Identity, u.Value.Count, u.Value.LastUse)).ToArray();

    private readonly record struct Key(string Credential, string Policy, string Listener, string Destination, string Caller, string? Identity);

    private sealed class Counter
    {
        private long _count;
        private long _lastUseTicks;

        public long Count => Interlocked.Read(ref _count);

        public DateTimeOffset LastUse => new(Interlocked.Read(ref _lastUseTicks), TimeSpan.Zero);

        public void Add(DateTimeOffset at)
        {
            Interlocked.Increment(ref _count);
            var ticks = at.UtcTicks;
            var seen = Interlocked.Read(ref _lastUseTicks);
            // The latest wins even when two uses finish out of order.
            while (ticks > seen)
            {
                var previous = Interlocked.CompareExchange(ref _lastUseTicks, ticks, seen);
                if (previous == seen)
                {
                    break;
                }

                seen = previous;
            }
        }
    }
}
