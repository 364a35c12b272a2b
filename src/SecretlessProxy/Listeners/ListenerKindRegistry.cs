using System.Diagnostics.CodeAnalysis;
using SecretlessProxy.Listeners.Forward;
using SecretlessProxy.Listeners.MySql;
using SecretlessProxy.Listeners.Postgres;
using SecretlessProxy.Listeners.Redis;
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
        new MySqlListenerKind(),
        new TransparentListenerKind(),
        new RedisListenerKind(),
    ];

    /// <summary>The listener keys every kind reads.</summary>
    public static readonly IReadOnlySet<string> CommonKeys = new HashSet<string>(["Mode", "Url", "HandshakeTimeout", "MaxConnections"], StringComparer.OrdinalIgnoreCase);

    /// <summary>"Route, Forward, Postgres, MySql, Transparent or Redis", for errors that name the modes.</summary>
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
        ReportOthersKeys(listener, kind);
        return known ? compiled : null;
    }

    /// <summary>
    /// Each key the listener sets that its kind does not read but another kind does, unless the
    /// kind said more about it already (Transparent names iptables' ports): "applies to Postgres
    /// and MySql listeners only". Keys no kind reads are the schema's to report.
    /// </summary>
    private static void ReportOthersKeys(ListenerCompilation listener, IListenerKind kind)
    {
        foreach (var child in listener.Section.GetChildren())
        {
            var key = child.Key;
            if (CommonKeys.Contains(key) || kind.OwnKeys.Contains(key, StringComparer.OrdinalIgnoreCase) || listener.Reported(key))
            {
                continue;
            }

            var readers = All.Where(k => k.OwnKeys.Contains(key, StringComparer.OrdinalIgnoreCase)).Select(k => k.Mode).ToArray();
            if (readers.Length > 0)
            {
                var names = readers.Length == 1 ? readers[0] : string.Join(", ", readers[..^1]) + " and " + readers[^1];
                listener.Add(key, "applies to " + names + " listeners only");
            }
        }
    }
}
