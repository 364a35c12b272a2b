using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>What a test needs of the machine besides files.</summary>
[Flags]
public enum Needs
{
    None = 0,

    /// <summary>Effective uid 0: to start processes as other users, as CI does.</summary>
    Root = 1,

    /// <summary>An IPv6 loopback address (::1) that can be bound.</summary>
    Ipv6Loopback = 2,

    /// <summary>A little-endian machine (expected byte orders written for it).</summary>
    LittleEndian = 4,
}

/// <summary>
/// A fact that is reported as skipped, with the reason, when the machine lacks what it needs,
/// instead of returning early and showing green. CI runs as root with curl, python3 and util-linux
/// installed (tests/run.sh), so there every one of these runs.
/// </summary>
public sealed class RequiresFactAttribute : FactAttribute
{
    public RequiresFactAttribute(Needs needs, params string[] files)
    {
        Skip = Requirements.Missing(needs, files);
    }

    public RequiresFactAttribute(params string[] files)
        : this(Needs.None, files)
    {
    }
}

/// <summary>A fact that starts processes as other users: needs root and <c>setpriv</c> (util-linux).</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute(params string[] files)
    {
        Skip = Requirements.Missing(Needs.Root, ["/usr/bin/setpriv", .. files]);
    }
}

/// <summary>A theory that starts processes as other users: needs root and <c>setpriv</c> (util-linux).</summary>
public sealed class RootTheoryAttribute : TheoryAttribute
{
    public RootTheoryAttribute(params string[] files)
    {
        Skip = Requirements.Missing(Needs.Root, ["/usr/bin/setpriv", .. files]);
    }
}

public static class Requirements
{
    /// <summary>Why the machine cannot run the test, naming each missing part, or null.</summary>
    public static string? Missing(Needs needs, IEnumerable<string> files)
    {
        var missing = new List<string>();
        if (needs.HasFlag(Needs.Root) && GetEUid() != 0)
        {
            missing.Add("root (this test process runs as uid " + GetEUid() + ")");
        }

        if (needs.HasFlag(Needs.Ipv6Loopback) && !CanBindIpv6Loopback())
        {
            missing.Add("an IPv6 loopback address (::1)");
        }

        if (needs.HasFlag(Needs.LittleEndian) && !BitConverter.IsLittleEndian)
        {
            missing.Add("a little-endian machine");
        }

        missing.AddRange(files.Where(f => !File.Exists(f)));
        return missing.Count == 0 ? null : "needs " + string.Join(", ", missing);
    }

    private static bool CanBindIpv6Loopback()
    {
        if (!Socket.OSSupportsIPv6)
        {
            return false;
        }

        try
        {
            using var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEUid();
}
