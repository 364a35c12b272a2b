namespace SecretlessProxy.Policy;

public enum DecisionKind
{
    Allow,
    Deny,
    PassThrough,
}
