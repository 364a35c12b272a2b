namespace SecretlessProxy.Policy;

internal static class UnmatchedBehaviorExtensions
{
    /// <summary>Whether a request or tunnel no policy matches is forwarded (with nothing injected) rather than refused.</summary>
    public static bool LetsThrough(this UnmatchedBehavior unmatched) => unmatched is UnmatchedBehavior.PassThrough or UnmatchedBehavior.Observe;
}
