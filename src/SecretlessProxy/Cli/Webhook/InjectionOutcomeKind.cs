namespace SecretlessProxy.Cli.Webhook;

internal enum InjectionOutcomeKind
{
    /// <summary>No annotation asks for the proxy: admitted unchanged.</summary>
    NotRequested,

    /// <summary>The pod has the proxy already (a re-invocation, or a pod rendered from the overlays): admitted unchanged.</summary>
    AlreadyInjected,

    /// <summary>Admitted with the patch.</summary>
    Injected,

    /// <summary>Asked for, but not possible: admitted or refused by the failure policy, with the reason.</summary>
    Impossible,
}
