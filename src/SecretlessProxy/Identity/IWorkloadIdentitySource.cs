namespace SecretlessProxy.Identity;

/// <summary>
/// Where the workload identity comes from (a token file, the SPIFFE Workload API). One lives per
/// applied configuration whose <c>Identity</c> section it was started from; a reload that changes
/// the section disposes it and starts the next.
/// </summary>
internal interface IWorkloadIdentitySource : IDisposable
{
    /// <summary>
    /// The current identity, or why there is none (a reason fit for a 503 problem and the log,
    /// never the token). Cheap on the hot path; never throws for a failure of the source, only for
    /// the caller's own cancellation; after <see cref="IDisposable.Dispose"/> it answers with its
    /// last status.
    /// </summary>
    ValueTask<IdentityStatus> GetAsync(CancellationToken cancellationToken);
}
