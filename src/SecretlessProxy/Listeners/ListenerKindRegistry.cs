using System.Diagnostics.CodeAnalysis;
using SecretlessProxy.Listeners.Forward;
using SecretlessProxy.Listeners.Postgres;
using SecretlessProxy.Listeners.Route;
using SecretlessProxy.Listeners.Transparent;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners;

/// <summary>Every listener kind, one line each, in the order the schema's <c>Mode</c> enum lists them.</summary>
internal static class ListenerKindRegistry
{
    public static readonly IReadOnlyList<IListenerKind> All =
    [
        new RouteListenerKind(),
        new ForwardListenerKind(),
        new PostgresListenerKind(),
        new TransparentListenerKind(),
    ];

    /// <summary>"Route, Forward, Postgres or Transparent", for errors that name the modes.</summary>
    public static string ModeList { get; } = string.Join(", ", All.Take(All.Count - 1).Select(k => k.Mode)) + " or " + All[^1].Mode;

    /// <summary>The kind whose <c>Mode</c> is <paramref name="mode"/>, ignoring case and surrounding white space.</summary>
    public static bool TryFind([NotNullWhen(true)] string? mode, [NotNullWhen(true)] out IListenerKind? kind)
    {
        var trimmed = mode?.Trim();
        kind = All.FirstOrDefault(k => string.Equals(k.Mode, trimmed, StringComparison.OrdinalIgnoreCase));
        return kind is not null;
    }

    /// <summary>The kind that compiled <paramref name="listener"/>.</summary>
    public static IListenerKind For(ListenerDefinition listener) =>
        TryFind(listener.Mode, out var kind) ? kind : throw new InvalidOperationException("No listener kind has the mode '" + listener.Mode + "'.");

    /// <summary>
    /// Compiles one listener through its kind. An unknown or missing mode is reported, and the
    /// listener's other keys are still checked as a Route listener's, so that one run of
    /// <c>validate</c> shows every problem.
    /// </summary>
    public static ListenerDefinition? Compile(ListenerCompilation listener)
    {
        var mode = listener.Options.Mode;
        var known = TryFind(mode, out var kind);
        if (!known)
        {
            listener.Add("Mode", mode is null ? "is required (" + ModeList + ")" : "'" + mode + "' is not a listener mode; expected " + ModeList);
            kind = All[0];
        }

        var compiled = kind!.Compile(listener);
        foreach (var other in All)
        {
            if (!ReferenceEquals(other, kind))
            {
                other.ReportOwnKeys(listener);
            }
        }

        return known ? compiled : null;
    }
}
