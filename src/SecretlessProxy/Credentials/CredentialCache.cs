using System.Collections.Frozen;
using Microsoft.Extensions.Logging;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Credentials;

/// <summary>
/// Hands out current, unexpired credentials by name: refreshes ahead of expiry, one fetch at a time
/// per credential, backs off after failures, and never returns an expired value.
/// </summary>
public sealed class CredentialCache : IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly FrozenDictionary<string, CredentialEntry> _entries;
    private int _disposed;

    public CredentialCache(IEnumerable<CredentialDefinition> definitions, TimeProvider time, ILoggerFactory loggerFactory, ProxyMetrics? metrics = null)
    {
        var logger = loggerFactory.CreateLogger<CredentialCache>();
        _entries = definitions.ToFrozenDictionary(
            d => d.Name,
            d => new CredentialEntry(d, time, logger, metrics, _stopping.Token),
            StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Returns a valid credential or throws <see cref="CredentialUnavailableException"/>.</summary>
    public ValueTask<CredentialLease> GetAsync(string name, CancellationToken cancellationToken)
    {
        if (!_entries.TryGetValue(name, out var entry))
        {
            // Validation rejects policies that name unknown credentials; this is a guard, not a path.
            throw new CredentialUnavailableException(name, "no such credential is configured");
        }

        return entry.GetAsync(cancellationToken);
    }

    /// <summary>Drops a cached credential so that the next request fetches anew; false when unknown.</summary>
    public bool Revoke(string name)
    {
        if (!_entries.TryGetValue(name, out var entry))
        {
            return false;
        }

        entry.Invalidate();
        return true;
    }

    public IReadOnlyList<CredentialStatus> GetStatuses() =>
        _entries.Values.Select(e => e.GetStatus()).OrderBy(s => s.Name, StringComparer.Ordinal).ToArray();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // Cancels fetches in flight; they record "cancelled because the proxy is stopping".
            _stopping.Cancel();
            _stopping.Dispose();
        }
    }
}
