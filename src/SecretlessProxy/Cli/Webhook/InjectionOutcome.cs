namespace SecretlessProxy.Cli.Webhook;

/// <summary>What <see cref="SidecarInjector"/> decided for one pod.</summary>
internal sealed record InjectionOutcome(InjectionOutcomeKind Kind, InjectionMode? Mode, IReadOnlyList<JsonPatchOperation> Patch, string? Reason)
{
    public static InjectionOutcome NotRequested { get; } = new(InjectionOutcomeKind.NotRequested, null, [], null);

    public static InjectionOutcome AlreadyInjected { get; } = new(InjectionOutcomeKind.AlreadyInjected, null, [], null);

    /// <summary>Said to the user with an admitted pod (admission warnings): what the webhook cannot check but the pod must get right.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    public static InjectionOutcome Injected(InjectionMode mode, IReadOnlyList<JsonPatchOperation> patch, IReadOnlyList<string> warnings) =>
        new(InjectionOutcomeKind.Injected, mode, patch, null) { Warnings = warnings };

    public static InjectionOutcome Impossible(string reason) => new(InjectionOutcomeKind.Impossible, null, [], reason);
}
