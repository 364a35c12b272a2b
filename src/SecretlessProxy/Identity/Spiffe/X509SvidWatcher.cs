using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using SecretlessProxy.Identity.Spiffe.WorkloadApi;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// The workload's X.509-SVID and X.509 bundles, kept current by the Workload API's FetchX509SVID
/// stream (the agent sends a new message on every rotation). Started by its first use, so a
/// configuration that is only validated, or compiled and then discarded, never connects. When the
/// stream fails or ends it is opened again after 1 s, doubling to 30 s, on the proxy's clock; the
/// last SVID keeps serving while it is valid, an expired one never does.
/// </summary>
/// <remarks>
/// Replaced certificates are not disposed: a TLS handshake on another thread may still hold one,
/// and the finalizer releases it.
/// </remarks>
internal sealed partial class X509SvidWatcher : IDisposable
{
    private readonly string? _spiffeId;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly WorkloadApiClient _client;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _firstAnswer = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private volatile X509SvidState? _current;
    private volatile string? _lastFailure;
    private bool _started;
    private Task _loop = Task.CompletedTask;
    private bool _disposed;

    public X509SvidWatcher(string socketPath, string? spiffeId, TimeProvider time, ILogger logger, TimeSpan? callTimeout = null)
    {
        _spiffeId = spiffeId;
        _time = time;
        _logger = logger;
        _client = new WorkloadApiClient(socketPath, callTimeout);
    }

    /// <summary>The agent's address as messages show it.</summary>
    public string Display => _client.Display;

    /// <summary>The last parsed stream message (valid or not), or null before the first.</summary>
    public X509SvidState? Current
    {
        get
        {
            EnsureStarted();
            return _current;
        }
    }

    /// <summary>The stream's loop once started: completes (never faults) once it has stopped after <see cref="Dispose"/>.</summary>
    internal Task Loop => Volatile.Read(ref _loop);

    /// <summary>Why the last attempt to read the stream failed, or null after a message.</summary>
    public string? LastFailure => _lastFailure;

    /// <summary>
    /// Completes at the first message or the first failure of the stream (or when stopped), and at
    /// the latest after the call timeout: an agent that accepts the stream and never sends must not
    /// hold requests; they get the reason instead.
    /// </summary>
    public async Task WhenFirstAnswerAsync(CancellationToken cancellationToken)
    {
        EnsureStarted();
        try
        {
            await _firstAnswer.Task.WaitAsync(_client.CallTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Interlocked.CompareExchange(ref _lastFailure, NoFirstMessage(), null);
        }
    }

    private string NoFirstMessage() =>
        "the SPIFFE Workload API at " + Display + " did not send an X.509-SVID within " + _client.CallTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture) + " s";

    /// <summary>The SVID to present now, or false with the reason (never key material) when there is none valid.</summary>
    public bool TryGetSvid(out X509SvidState? svid, out string reason)
    {
        var current = Current;
        var now = _time.GetUtcNow();
        if (current is null)
        {
            svid = null;
            reason = "no X.509-SVID from the SPIFFE Workload API at " + Display + " yet: " + (_lastFailure ?? "it is being fetched");
            return false;
        }

        if (now >= current.NotAfter || now < current.NotBefore)
        {
            svid = null;
            reason = "the X.509-SVID for " + current.Id + " (" + current.Certificate.Thumbprint + ") from the SPIFFE Workload API at " + Display + " is valid from " + Format(current.NotBefore) + " to " + Format(current.NotAfter) + ", not now"
                + (_lastFailure is { } failure ? "; it could not be renewed: " + failure : string.Empty);
            return false;
        }

        svid = current;
        reason = string.Empty;
        return true;
    }

    /// <summary>The CA certificates of <paramref name="trustDomainId"/>, or false with the reason.</summary>
    public bool TryGetBundle(string trustDomainId, out X509Certificate2Collection? roots, out string reason)
    {
        var current = Current;
        if (current is null)
        {
            roots = null;
            reason = "no X.509 bundle from the SPIFFE Workload API at " + Display + " yet: " + (_lastFailure ?? "it is being fetched");
            return false;
        }

        if (!current.Bundles.TryGetValue(trustDomainId, out roots))
        {
            reason = "the SPIFFE Workload API at " + Display + " has no X.509 bundle for " + trustDomainId;
            return false;
        }

        reason = string.Empty;
        return true;
    }

    private void EnsureStarted()
    {
        if (Volatile.Read(ref _started))
        {
            return;
        }

        lock (_gate)
        {
            if (_started || _disposed)
            {
                return;
            }

            _started = true;
        }

        Volatile.Write(ref _loop, Task.Run(RunAsync, CancellationToken.None));
    }

    public void Dispose()
    {
        bool started;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            started = _started;
        }

        _stopping.Cancel();
        _firstAnswer.TrySetResult();
        if (!started)
        {
            _client.Dispose();
            _stopping.Dispose();
        }
    }

    private async Task RunAsync()
    {
        var token = _stopping.Token;
        var failures = 0;
        try
        {
            while (!token.IsCancellationRequested)
            {
                string failure;
                try
                {
                    using var call = _client.StreamX509Svids(token);
                    while (await NextAsync(call.ResponseStream, first: _current is null || failures > 0, token).ConfigureAwait(false))
                    {
                        var next = Parse(call.ResponseStream.Current);
                        var previous = _current;
                        _current = next;
                        _lastFailure = null;
                        failures = 0;
                        _firstAnswer.TrySetResult();
                        if (previous?.Certificate.Thumbprint != next.Certificate.Thumbprint)
                        {
                            Log.Rotated(_logger, Display, next.Id.Value, next.Certificate.Thumbprint, Format(next.NotAfter));
                        }
                    }

                    failure = "the SPIFFE Workload API at " + Display + " ended the X.509-SVID stream";
                }
                catch (RpcException ex) when (!token.IsCancellationRequested)
                {
                    failure = _client.Failure("FetchX509SVID", ex).Message;
                }
                catch (WorkloadApiException ex)
                {
                    failure = ex.Message;
                }
                catch (Exception ex) when (!token.IsCancellationRequested)
                {
                    // The stream is opened again whatever broke; another exception's message is not shown.
                    failure = "the X.509-SVID stream from the SPIFFE Workload API at " + Display + " failed (" + ex.GetType().Name + ")";
                }

                failures++;
                _lastFailure = failure;
                _firstAnswer.TrySetResult();
                var stillValid = _current is { } held && _time.GetUtcNow() < held.NotAfter;
                if (failures == 1 || failures % 10 == 0)
                {
                    Log.StreamFailed(_logger, failure, stillValid, failures);
                }

                var delay = TimeSpan.FromTicks(Math.Min(SpiffeJwtIdentity.MaxBackoff.Ticks, SpiffeJwtIdentity.FirstBackoff.Ticks << Math.Min(failures - 1, 10)));
                await Task.Delay(delay, _time, token).ConfigureAwait(false);
            }
        }
        catch (Exception) when (token.IsCancellationRequested)
        {
            // Stopped: the credential was dropped or the proxy is shutting down. gRPC reports the
            // cancellation as RpcException(Cancelled), not OperationCanceledException.
        }
        finally
        {
            _client.Dispose();
            _stopping.Dispose();
        }
    }

    /// <summary>
    /// The next stream message. The first of a stream (when none has arrived since it was opened
    /// after a failure or at start) must come within the call timeout: an agent that accepts the
    /// stream and never sends is a failure, and the stream is opened again with backoff.
    /// </summary>
    private async Task<bool> NextAsync(IAsyncStreamReader<X509SVIDResponse> stream, bool first, CancellationToken token)
    {
        if (!first)
        {
            return await stream.MoveNext(token).ConfigureAwait(false);
        }

        using var bound = CancellationTokenSource.CreateLinkedTokenSource(token);
        bound.CancelAfter(_client.CallTimeout);
        try
        {
            return await stream.MoveNext(bound.Token).ConfigureAwait(false);
        }
        catch (Exception) when (bound.IsCancellationRequested && !token.IsCancellationRequested)
        {
            throw new WorkloadApiException(NoFirstMessage());
        }
    }

    /// <summary>The SVID this watcher is for (the configured SPIFFE ID, else the first) and every bundle.</summary>
    private X509SvidState Parse(X509SVIDResponse response)
    {
        var svid = response.Svids.FirstOrDefault(s => _spiffeId is null || s.SpiffeId == _spiffeId)
            ?? throw new WorkloadApiException("the SPIFFE Workload API at " + Display + " sent no X.509-SVID" + (_spiffeId is null ? string.Empty : " for " + _spiffeId));
        if (!SpiffeId.TryParse(svid.SpiffeId, out var id, out var idError))
        {
            throw new WorkloadApiException("the X.509-SVID's SPIFFE ID " + idError);
        }

        try
        {
            var chain = SpiffeCertificates.ParseDer(svid.X509Svid.Span);
            if (chain.Count == 0)
            {
                throw new WorkloadApiException("the X.509-SVID for " + id + " from " + Display + " has no certificate");
            }

            if (SpiffeCertificates.IdOf(chain[0]) is not { } leafId || leafId.Value != id!.Value)
            {
                // X509-SVID profile section 2: the leaf's one URI SAN is the SPIFFE ID.
                throw new WorkloadApiException("the X.509-SVID for " + id + " from " + Display + " does not name that SPIFFE ID in its URI SAN");
            }

            var leaf = SpiffeCertificates.WithKey(chain[0], svid.X509SvidKey.Span);
            var intermediates = new X509Certificate2Collection();
            for (var i = 1; i < chain.Count; i++)
            {
                intermediates.Add(chain[i]);
            }

            var bundles = new Dictionary<string, X509Certificate2Collection>(StringComparer.Ordinal)
            {
                [id.TrustDomainId] = SpiffeCertificates.ParseDer(svid.Bundle.Span),
            };
            foreach (var (trustDomain, der) in response.FederatedBundles)
            {
                bundles.TryAdd(trustDomain, SpiffeCertificates.ParseDer(der.Span));
            }

            return new X509SvidState(id, leaf, intermediates, bundles);
        }
        catch (Exception ex) when (ex is CryptographicException or System.Formats.Asn1.AsnContentException)
        {
            // The exception's message is not shown: it could describe the key.
            throw new WorkloadApiException("the X.509-SVID for " + id + " from " + Display + " could not be read (" + ex.GetType().Name + ")");
        }
    }

    private static string Format(DateTimeOffset time) => time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static partial class Log
    {
        [LoggerMessage(EventIds.SpiffeX509SvidRotated, LogLevel.Information, "X.509-SVID from the SPIFFE Workload API at {Socket}: {SpiffeId}, thumbprint {Thumbprint}, expires {NotAfter}")]
        public static partial void Rotated(ILogger logger, string socket, string spiffeId, string thumbprint, string notAfter);

        [LoggerMessage(EventIds.SpiffeX509SvidStreamFailed, LogLevel.Warning, "The X.509-SVID stream failed: {Reason} (current SVID still valid: {StillValid}; {Failures} failure(s) in a row, reconnecting with backoff)")]
        public static partial void StreamFailed(ILogger logger, string reason, bool stillValid, int failures);
    }
}
