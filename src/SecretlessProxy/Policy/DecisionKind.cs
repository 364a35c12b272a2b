namespace SecretlessProxy.Policy;

internal enum DecisionKind
{
    Allow,
    Deny,
    PassThrough,
}
