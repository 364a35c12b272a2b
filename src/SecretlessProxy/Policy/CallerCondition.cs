using System.Collections.Frozen;
using SecretlessProxy.Core;

namespace SecretlessProxy.Policy;

/// <summary>
/// A policy's <c>Caller</c> condition. A caller that could not be attested down to its process
/// never satisfies it, even when its uid is known (a uid alone is shared by every process of that
/// user, in any container): "unknown" must not be a way around a constraint.
/// <c>Executables</c> compares the path the process's own mount namespace shows, which another
/// container or a user namespace can arrange; <c>ExecutableSha256</c> is computed from the bytes
/// actually running.
/// </summary>
/// <remarks>
/// What each guarantees. <c>Uids</c>: the socket was created by a process of that uid (the kernel
/// keeps the creator's uid on the socket wherever it is passed; only CAP_CHOWN changes it).
/// <c>Executables</c>/<c>ExecutableSha256</c>: whenever the proxy looked (at accept and at each
/// request), every process that held the socket ran that file, and none had exec'd another or been
/// replaced since. They do not say who wrote the bytes: a process of a uid that can act on the
/// allowed one can keep the socket out of every descriptor table while the proxy looks (in flight
/// in a Unix socket) and write between looks, or load its code into the allowed binary
/// (LD_PRELOAD, ptrace). So they are a boundary only between uids, and configuration validation
/// requires them to come with <c>Uids</c> or with <c>SameUidCanImpersonate: true</c>.
/// </remarks>
internal sealed class CallerCondition
{
    public CallerCondition(IReadOnlyCollection<int>? uids, IReadOnlyCollection<string>? executables, IReadOnlyCollection<string>? executableSha256)
    {
        Uids = uids?.ToFrozenSet();
        Executables = executables?.ToFrozenSet(StringComparer.Ordinal);
        // Hashes are compared case-insensitively: people paste them from sha256sum (lower) or elsewhere (upper).
        ExecutableSha256 = executableSha256?.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
    }

    public FrozenSet<int>? Uids { get; }

    public FrozenSet<string>? Executables { get; }

    public FrozenSet<string>? ExecutableSha256 { get; }

    public ConditionFailure Evaluate(Caller caller)
    {
        if (!caller.IsKnown || caller.Pid is null)
        {
            return ConditionFailure.CallerUnknown;
        }

        if (Uids is not null && (caller.Uid is not { } uid || !Uids.Contains(uid)))
        {
            return ConditionFailure.CallerUid;
        }

        if (Executables is not null && (caller.Executable is not { } exe || !Executables.Contains(exe)))
        {
            // Known uid but no pid (no permission to read the process) cannot satisfy an executable rule.
            return caller.Executable is null ? ConditionFailure.CallerUnknown : ConditionFailure.CallerExecutable;
        }

        if (ExecutableSha256 is not null && (caller.ExecutableSha256 is not { } hash || !ExecutableSha256.Contains(hash)))
        {
            return caller.ExecutableSha256 is null ? ConditionFailure.CallerUnknown : ConditionFailure.CallerExecutableHash;
        }

        return ConditionFailure.None;
    }

    /// <summary>True when no caller can satisfy both conditions (some list they both constrain has no common entry).</summary>
    public bool IsDisjointFrom(CallerCondition other) =>
        Disjoint(Uids, other.Uids) || Disjoint(Executables, other.Executables) || Disjoint(ExecutableSha256, other.ExecutableSha256);

    internal static bool Disjoint<T>(FrozenSet<T>? a, FrozenSet<T>? b) => a is not null && b is not null && !a.Overlaps(b);
}
