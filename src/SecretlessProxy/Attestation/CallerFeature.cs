using SecretlessProxy.Core;

namespace SecretlessProxy.Attestation;

/// <summary>
/// Set on each connection by its listener: the calling process. Attested once (at accept when a
/// policy has a Caller condition, else at the first read) and, while a policy has one, re-checked
/// each time <see cref="Caller"/> is read, so each HTTP request and each database login is decided
/// on the connection's caller now: a connection handed to another program, or whose process
/// exec(2)s another binary, after it was attested is its uid alone from then on.
/// </summary>
internal sealed class CallerFeature
{
    private readonly Func<CallerAttestation>? _attest;
    private readonly Func<Task<CallerAttestation>>? _attestAsync;
    private Task<CallerAttestation>? _pending;
    private bool _attestedAtAccept;
    private readonly Func<CallerAttestation, CallerAttestation>? _recheck;
    private readonly Func<bool>? _recheckWanted;
    private CallerAttestation? _attestation;

    /// <summary>A connection whose caller is known without a lookup (or known to be unknowable).</summary>
    public CallerFeature(Caller caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        _attestation = CallerAttestation.Fixed(caller);
    }

    /// <param name="attest">Resolves the caller with everything a re-check compares (a /proc scan: milliseconds).</param>
    /// <param name="recheck">Checks an attestation against the process table now (a few reads per holder).</param>
    /// <param name="recheckWanted">Whether a policy reads the caller now: otherwise the answer is kept (audit only).</param>
    /// <param name="attestNow">Attest in the constructor (at accept), so that the first request is checked against it.</param>
    /// <param name="attestAsync">
    /// The same attestation with its scan shared with other connections' and run off the thread pool
    /// (<see cref="GetCallerAsync"/>); null where attesting needs no scan. An attestation asked for at
    /// accept is then started there and awaited by the first read.
    /// </param>
    internal CallerFeature(Func<CallerAttestation> attest, Func<CallerAttestation, CallerAttestation> recheck, Func<bool> recheckWanted, bool attestNow, Func<Task<CallerAttestation>>? attestAsync = null)
    {
        _attest = attest;
        _attestAsync = attestAsync;
        _recheck = recheck;
        _recheckWanted = recheckWanted;
        if (attestNow)
        {
            if (attestAsync is not null)
            {
                _pending = attestAsync();
                _attestedAtAccept = true;
            }
            else
            {
                _attestation = attest();
            }
        }
    }

    /// <summary>
    /// As <see cref="Caller"/>, without holding a thread while the first attestation scans: what a
    /// request path reads. Later reads re-check synchronously (a few reads of /proc per holder).
    /// </summary>
    public async ValueTask<Caller> GetCallerAsync()
    {
        if (_attestation is null && (_pending is not null || _attestAsync is not null))
        {
            _pending ??= _attestAsync!();
            var attested = await _pending.ConfigureAwait(false);
            _attestation ??= attested;
            if (!_attestedAtAccept)
            {
                // Made for this read, just now: it is the answer; re-checks start with the next read.
                return attested.Caller;
            }

            // Made at accept: the client chose when to send this request, and its process may have
            // exec(2)'d another binary or handed the socket on since. Checked now, as every later read.
        }

        return Caller;
    }

    /// <summary>
    /// The caller now. The first read without an attestation at accept resolves it (a connection
    /// opened before a reload added a Caller condition, or one only audited); later reads
    /// re-check it while the policy set uses the caller.
    /// </summary>
    // Requests on one HTTP/1.1 connection are sequential; HTTP/2 streams may read concurrently:
    // each then checks, and a change stays (the changed attestation has nothing to re-check), so
    // the last write winning is harmless. No lock.
    public Caller Caller
    {
        get
        {
            var attestation = _attestation;
            if (attestation is null)
            {
                // A read that cannot wait (a refusal's record): the finished attestation made at accept
                // (then re-checked below, as any later read), or one made now on this thread. Never a
                // wait for the pending one: its continuation needs a pool thread, as this one may be.
                if (_pending is { IsCompletedSuccessfully: true } done && _attestedAtAccept)
                {
                    attestation = done.Result;
                    _attestation = attestation;
                }
                else
                {
                    attestation = _attest!();
                    _attestation = attestation;
                    return attestation.Caller;
                }
            }

            if (_recheck is null || attestation.Holders is null || !_recheckWanted!())
            {
                return attestation.Caller;
            }

            var now = _recheck(attestation);
            if (!ReferenceEquals(now, attestation))
            {
                _attestation = now;
            }

            return now.Caller;
        }
    }
}
