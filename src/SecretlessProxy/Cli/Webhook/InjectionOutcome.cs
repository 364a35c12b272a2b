namespace SecretlessProxy.Cli.Webhook;

/// <summary>What <see cref="SidecarInjector"/> decided for one pod.</summary>
internal sealed record InjectionOutcome(InjectionOutcomeKind Kind, InjectionMode? Mode, IReadOnlyList<JsonPatchOperation> Patch, string? Reason)
{
    public static InjectionOutcome NotRequested { get; } = new(InjectionOutcomeKind.NotRequested, null, [], null);

    public static InjectionOutcome AlreadyInjected { get; } = new(InjectionOutcomeKind.AlreadyInjected, null, [], null);

    public static InjectionOutcome Injected(InjectionMode mode, IReadOnlyList<JsonPatchOperation> patch) => new(InjectionOutcomeKind.Injected, mode, patch, null);

    public static InjectionOutcome Impossible(string reason) => new(InjectionOutcomeKind.Impossible, null, [], reason);
}
