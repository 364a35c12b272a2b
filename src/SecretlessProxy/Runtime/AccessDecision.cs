namespace SecretlessProxy.Runtime;

/// <summary>What <see cref="AccessPipeline.DecideAsync"/> answers: an <see cref="AccessGrant"/> or an <see cref="AccessRefusal"/>.</summary>
internal abstract class AccessDecision
{
    private protected AccessDecision()
    {
    }
}
