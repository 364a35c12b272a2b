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
    internal CallerFeature(Func<CallerAttestation> attest, Func<CallerAttestation, CallerAttestation> recheck, Func<bool> recheckWanted, bool attestNow)
    {
        _attest = attest;
        _recheck = recheck;
        _recheckWanted = recheckWanted;
        if (attestNow)
        {
            _attestation = attest();
        }
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
                attestation = _attest!();
                _attestation = attestation;
                return attestation.Caller;
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
