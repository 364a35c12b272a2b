namespace SecretlessProxy.Cli;

/// <summary>How a step behaves when it runs twice, which is what makes applying the rules idempotent.</summary>
internal enum IptablesStepKind
{
    /// <summary>Must succeed.</summary>
    Run,

    /// <summary>May fail (creating a chain that exists, deleting one that does not).</summary>
    IgnoreFailure,

    /// <summary>A rule added only when <c>-C</c> does not find it, so the OUTPUT jump exists once.</summary>
    AddUnlessPresent,

    /// <summary>A rule deleted as often as it is found, so earlier duplicates go too.</summary>
    DeleteWhilePresent,
}
