using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Policy;

namespace SecretlessProxy.Runtime;

/// <summary>
/// An access that may go on: the policy that allowed it (none when passed through), the leased
/// credential when its injection needs one, and what to inject, which is always something the
/// listener said it can act on. Not recorded yet: the listener calls <see cref="Complete"/> when the
/// access is under way (forwarded, logged in), or <see cref="Refuse"/> when it cannot go on
/// (a certificate that cannot be presented, a failed login); either records it, exactly once.
/// </summary>
internal sealed class AccessGrant : AccessDecision
{
    private readonly AccessPipeline _pipeline;
    private readonly AccessRequest _request;
    private readonly AccessPipeline.Who _who;
    private readonly PolicyDecision _decision;
    private int _recorded;

    internal AccessGrant(AccessPipeline pipeline, AccessRequest request, in AccessPipeline.Who who, PolicyDecision decision, CredentialLease? lease, string? credentialName, string? credentialSource)
    {
        _pipeline = pipeline;
        _request = request;
        _who = who;
        _decision = decision;
        Lease = lease;
        CredentialName = credentialName;
        CredentialSource = credentialSource;
    }

    /// <summary>
    /// The policy that allowed the access, or the observing policy that would have denied it (passed
    /// through); null when an unmatched request is passed through with nothing injected.
    /// </summary>
    public CompiledPolicy? Policy => _decision.Policy;

    /// <summary>What to inject; null when passed through (unmatched, or an observed denial).</summary>
    public InjectionRule? Injection => _decision.Kind == DecisionKind.Allow ? _decision.Policy?.Injection : null;

    /// <summary>Set when the injection needs a credential value (an HTTP request, a database login); a TLS client certificate is its own credential.</summary>
    public CredentialLease? Lease { get; }

    public Credential? Credential => Lease?.Credential;

    public string? CredentialName { get; }

    public string? CredentialSource { get; }

    /// <summary>
    /// Records the access as under way (<see cref="AccessOutcome.Forwarded"/>, <see cref="AccessOutcome.PassedThrough"/>,
    /// <see cref="AccessOutcome.Connected"/>), or ended after the grant without an answer to send (the app went away).
    /// </summary>
    public void Complete(AccessOutcome outcome, string? reason = null) => Record(outcome, reason ?? _decision.Reason);

    /// <summary>Records that the granted access cannot go on, and returns the refusal for the listener to send.</summary>
    public AccessRefusal Refuse(AccessOutcome outcome, string reason)
    {
        Record(outcome, reason);
        return new AccessRefusal(outcome, reason);
    }

    /// <summary>
    /// The access failed after it was recorded (the upstream failed mid-request, a body could not be
    /// signed as it streamed): the span says so; the audit record and the request count stay the
    /// ones written at the decision, so each access is still counted once.
    /// </summary>
    public void Amend(AccessOutcome outcome, string reason)
    {
        if (_request.Activity is { } activity)
        {
            AccessPipeline.TagOutcome(activity, outcome, reason);
        }
    }

    private void Record(AccessOutcome outcome, string reason)
    {
        if (Interlocked.Exchange(ref _recorded, 1) != 0)
        {
            throw new InvalidOperationException("an access is recorded once");
        }

        var databaseUser = Injection?.Target == InjectionTarget.DatabaseLogin ? Credential?.Username : null;
        _pipeline.Record(_request, _who, _decision.Name, Policy, outcome, reason, CredentialName, CredentialSource, Lease?.OutcomeName, databaseUser);
    }
}
