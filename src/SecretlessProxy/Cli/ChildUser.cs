using System.Globalization;

namespace SecretlessProxy.Cli;

/// <summary>
/// The user a wrapped command runs as (<c>run --user UID[:GID]</c>). The supplementary groups are
/// always cleared: the command has this one gid and nothing the proxy's user belonged to.
/// </summary>
internal readonly record struct ChildUser(uint Uid, uint Gid)
{
    /// <summary>What a command runs as when the proxy runs as root and no --user is given.</summary>
    public static readonly ChildUser Nobody = new(65534, 65534);

    public override string ToString() => Uid.ToString(CultureInfo.InvariantCulture) + ":" + Gid.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// <c>UID</c> (the gid is then the same number), <c>UID:GID</c>, or names: <c>NAME</c> (its uid
    /// and primary group from the user database), <c>NAME:GROUP</c>.
    /// </summary>
    public static bool TryParse(string text, out ChildUser user, out string? error)
    {
        user = default;
        var parts = text.Split(':');
        if (parts.Length > 2 || parts.Any(p => p.Length == 0))
        {
            error = "--user '" + text + "' is not UID, UID:GID, NAME or NAME:GROUP";
            return false;
        }

        uint uid;
        uint primaryGid;
        if (uint.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out uid))
        {
            primaryGid = uid;
        }
        else if (Posix.LookUpUser(parts[0]) is { } entry)
        {
            (uid, primaryGid) = entry;
        }
        else
        {
            error = "--user: there is no user named '" + parts[0] + "' (give a numeric uid)";
            return false;
        }

        var gid = primaryGid;
        if (parts.Length == 2 && !uint.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out gid))
        {
            if (Posix.LookUpGroup(parts[1]) is not { } group)
            {
                error = "--user: there is no group named '" + parts[1] + "' (give a numeric gid)";
                return false;
            }

            gid = group;
        }

        // (uid_t)-1 means "leave unchanged" to setresuid; it must never be taken as a user.
        if (uid == uint.MaxValue || gid == uint.MaxValue)
        {
            error = "--user '" + text + "': 4294967295 is not a usable id";
            return false;
        }

        user = new ChildUser(uid, gid);
        error = null;
        return true;
    }
}
