namespace SecretlessProxy.Identity;

/// <summary>The validated <c>Identity</c> section of one configuration version, for one kind of source.</summary>
internal interface IWorkloadIdentitySettings
{
    /// <summary>Whether the identity's claims are verified (so policy <c>Identity</c> conditions may rely on them).</summary>
    bool Verifies { get; }

    /// <summary>True when <paramref name="other"/> would start the same source: a reload then keeps the running one.</summary>
    bool SameAs(IWorkloadIdentitySettings? other);

    /// <summary>Starts the source these settings describe.</summary>
    IWorkloadIdentitySource Start(IdentityServices services);
}
