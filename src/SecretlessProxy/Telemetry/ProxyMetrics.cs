using System.Diagnostics;
using System.Diagnostics.Metrics;
using SecretlessProxy.Core;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// The proxy's metrics (meter <c>SecretlessProxy</c>), exported as Prometheus text on the admin
/// port's <c>/metrics</c> and over OTLP when configured. Label values are names and outcomes,
/// never values, so no series can carry a secret.
/// </summary>
internal sealed class ProxyMetrics
{
    public const string MeterName = "SecretlessProxy";

    private readonly Meter _meter;
    private readonly Counter<long> _requests;
    private readonly Counter<long> _injections;
    private readonly Counter<long> _fetches;
    private readonly Histogram<double> _fetchDuration;
    private readonly Counter<long> _upstreamErrors;
    private readonly Histogram<double> _addedLatency;
    private readonly Counter<long> _connectionsRefused;
    private readonly Counter<long> _signingBufferRefusals;
    private readonly Counter<long> _leafCertificatesRemoved;
    private readonly Counter<long> _configReloads;

    public ProxyMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _requests = _meter.CreateCounter<long>("secretless.proxy.requests", "{request}", "Requests and database connections by listener, policy, decision and outcome, one per access.");
        _injections = _meter.CreateCounter<long>("secretless.proxy.injections", "{injection}", "Credentials injected into requests.");
        _fetches = _meter.CreateCounter<long>("secretless.credential.fetches", "{fetch}", "Credential fetches by outcome.");
        _fetchDuration = _meter.CreateHistogram<double>(
            "secretless.credential.fetch.duration", "s", "Duration of credential fetches, retries included.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _upstreamErrors = _meter.CreateCounter<long>("secretless.proxy.upstream.errors", "{error}", "Forwarding failures by listener and error.");
        _addedLatency = _meter.CreateHistogram<double>(
            "secretless.proxy.added_latency", "s", "Time from a request's arrival until the proxy sends it upstream: decision, credential, injection and request copy.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5] });
        _configReloads = _meter.CreateCounter<long>("secretless.proxy.config.reloads", "{reload}", "Configuration reloads by outcome: applied, or rejected (the running configuration stays).");
        _leafCertificatesRemoved = _meter.CreateCounter<long>("secretless.proxy.leaf_certificates.evicted", "{certificate}", "Leaf certificates dropped from the local CA's cache, by reason: evicted (least recently used, beyond LocalCa:MaxLeafCertificates) or renewed.");
        _connectionsRefused = _meter.CreateCounter<long>("secretless.proxy.connections.refused", "{connection}", "Connections a listener refused or closed before their first request, by listener and reason (max-connections, handshake-timeout).");
        _signingBufferRefusals = _meter.CreateCounter<long>("secretless.proxy.signing_buffer.refusals", "{request}", "Requests refused because their body could not be buffered for SigV4 signing within Limits:SigningBufferBytes, by policy and reason (signing-buffer-full, signing-body-too-large).");
    }

    public void Request(string listener, string? policy, string decision, AccessOutcome outcome) =>
        _requests.Add(1, new TagList { { "listener", listener }, { "policy", policy ?? string.Empty }, { "decision", decision }, { "outcome", outcome.ToWireName() } });

    public void Injection(string policy, string credential, string kind) =>
        _injections.Add(1, new TagList { { "policy", policy }, { "credential", credential }, { "injection", kind } });

    public void CredentialFetch(string credential, string source, bool success, TimeSpan duration)
    {
        var tags = new TagList { { "credential", credential }, { "source", source }, { "outcome", success ? "success" : "failure" } };
        _fetches.Add(1, tags);
        _fetchDuration.Record(duration.TotalSeconds, tags);
    }

    /// <param name="outcome"><c>applied</c> or <c>rejected</c>, as <c>ReloadStatus</c> names them.</param>
    public void ConfigReload(string outcome) =>
        _configReloads.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public void UpstreamError(string listener, string error) =>
        _upstreamErrors.Add(1, new TagList { { "listener", listener }, { "error", error } });

    public void ConnectionRefused(string listener, string reason) =>
        _connectionsRefused.Add(1, new TagList { { "listener", listener }, { "reason", reason } });

    public void SigningBufferRefusal(string policy, string reason) =>
        _signingBufferRefusals.Add(1, new TagList { { "policy", policy }, { "reason", reason } });

    /// <summary>The bytes held for signing now and the most that may be, read at each collection.</summary>
    public void ObserveSigningBuffers(Func<long> held, Func<long> capacity)
    {
        _meter.CreateObservableGauge("secretless.proxy.signing_buffer.held", held, "By", "Bytes of request bodies held for SigV4 payload signing, across all requests.");
        _meter.CreateObservableGauge("secretless.proxy.signing_buffer.capacity", capacity, "By", "The most bytes of request bodies held at once for SigV4 payload signing (Limits:SigningBufferBytes).");
    }

    public void LeafCertificateRemoved(string reason) =>
        _leafCertificatesRemoved.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>How many leaf certificates the local CA's cache holds (bounded by LocalCa:MaxLeafCertificates).</summary>
    public void ObserveLeafCertificates(Func<int> count) =>
        _meter.CreateObservableGauge(
            "secretless.proxy.leaf_certificates.cached",
            count,
            "{certificate}",
            "Leaf certificates held by the local CA's cache.");

    public void AddedLatency(string listener, TimeSpan elapsed) =>
        _addedLatency.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("listener", listener));

    /// <summary>Seconds until each cached credential expires; credentials that do not expire report nothing.</summary>
    public void ObserveCredentialExpiry(Func<IEnumerable<CredentialStatus>> statuses, TimeProvider time) =>
        _meter.CreateObservableGauge(
            "secretless.credential.expires_in",
            () => Observe(statuses(), time),
            "s",
            "Seconds until the cached credential expires.");

    private static IEnumerable<Measurement<double>> Observe(IEnumerable<CredentialStatus> statuses, TimeProvider time)
    {
        var now = time.GetUtcNow();
        foreach (var status in statuses)
        {
            if (status.ExpiresAt is { } expiresAt)
            {
                yield return new Measurement<double>((expiresAt - now).TotalSeconds, new KeyValuePair<string, object?>("credential", status.Name), new KeyValuePair<string, object?>("source", status.Source));
            }
        }
    }
}
