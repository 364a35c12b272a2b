using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>A theory that is reported as skipped, with the reason, when kubectl is not installed.</summary>
public sealed class KubectlTheoryAttribute : TheoryAttribute
{
    public KubectlTheoryAttribute()
    {
        if (!Kustomize.Available)
        {
            Skip = Kustomize.SkipReason;
        }
    }
}
