namespace SecretlessProxy.Policy;

/// <summary>What a listener does with a request that no policy matches.</summary>
internal enum UnmatchedBehavior
{
    /// <summary>403 problem response; the upstream is not called. The default: fail closed.</summary>
    Deny,

    /// <summary>Forwarded untouched with nothing injected.</summary>
    PassThrough,

    /// <summary>
    /// Observe-then-enforce: forwarded untouched with nothing injected, as <see cref="PassThrough"/>,
    /// and recorded as <c>would-deny</c>, so a rollout sees what enforcing would refuse.
    /// </summary>
    Observe,
}
