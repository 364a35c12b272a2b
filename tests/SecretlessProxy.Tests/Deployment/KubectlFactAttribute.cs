using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>A fact that is reported as skipped, with the reason, when kubectl is not installed.</summary>
public sealed class KubectlFactAttribute : FactAttribute
{
    public KubectlFactAttribute()
    {
        if (!Kustomize.Available)
        {
            Skip = Kustomize.SkipReason;
        }
    }
}
