namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// What the webhook answers for a pod that asks for the proxy but cannot get it (an unknown mode, no
/// config name, a malformed pod). Named like the MutatingWebhookConfiguration field, which decides
/// the other case: the API server not reaching the webhook at all.
/// </summary>
internal enum WebhookFailurePolicy
{
    /// <summary>Refuse the pod (allowed=false, the reason in the status message).</summary>
    Fail,

    /// <summary>Admit the pod unchanged, the reason as an admission warning (kubectl prints it).</summary>
    Ignore,
}
