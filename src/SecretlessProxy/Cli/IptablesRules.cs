using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace SecretlessProxy.Cli;

/// <summary>
/// The nat rules that send a pod's outbound TCP to the Transparent listener, in the manner of Istio's
/// istio-iptables: a <c>SECRETLESS_OUTPUT</c> chain jumped to from OUTPUT that returns early for the
/// proxy's own uid (its upstream connections must leave, not come back), loopback and excluded
/// CIDRs, and REDIRECTs the configured destination ports to the listener. Rendering is pure, so the
/// printed script and the applied steps are the same list.
/// </summary>
internal static class IptablesRules
{
    public const string Chain = "SECRETLESS_OUTPUT";

    /// <summary>Stands for -A, -C or -D in a rule that is checked before it is added or deleted.</summary>
    internal const string OperationPlaceholder = "{op}";

    // iptables' multiport match takes at most 15 ports per rule.
    private const int MultiportLimit = 15;

    public static IReadOnlyList<IptablesStep> Install(IptablesSettings settings)
    {
        var steps = new List<IptablesStep>();
        AddInstall(steps, "iptables", AddressFamily.InterNetwork, settings);
        if (settings.Ipv6)
        {
            AddInstall(steps, "ip6tables", AddressFamily.InterNetworkV6, settings);
        }

        return steps;
    }

    public static IReadOnlyList<IptablesStep> Remove(bool ipv6)
    {
        var steps = new List<IptablesStep>();
        AddRemove(steps, "iptables");
        if (ipv6)
        {
            AddRemove(steps, "ip6tables");
        }

        return steps;
    }

    private static void AddInstall(List<IptablesStep> steps, string tool, AddressFamily family, IptablesSettings settings)
    {
        // Create (or keep) the chain and empty it, so applying twice leaves one copy of each rule.
        steps.Add(new(tool, IptablesStepKind.IgnoreFailure, ["-t", "nat", "-N", Chain]));
        steps.Add(new(tool, IptablesStepKind.Run, ["-t", "nat", "-F", Chain]));
        steps.Add(Append(tool, "-m", "owner", "--uid-owner", settings.ProxyUid.ToString(CultureInfo.InvariantCulture), "-j", "RETURN"));
        steps.Add(Append(tool, "-o", "lo", "-j", "RETURN"));
        steps.Add(Append(tool, "-d", family == AddressFamily.InterNetwork ? "127.0.0.0/8" : "::1/128", "-j", "RETURN"));
        foreach (var cidr in settings.ExcludeCidrs.Where(c => c.BaseAddress.AddressFamily == family))
        {
            steps.Add(Append(tool, "-d", cidr.ToString(), "-j", "RETURN"));
        }

        foreach (var chunk in settings.RedirectPorts.Chunk(MultiportLimit))
        {
            steps.Add(Append(tool, "-p", "tcp", "-m", "multiport", "--dports", string.Join(',', chunk), "-j", "REDIRECT", "--to-ports", settings.ListenerPort.ToString(CultureInfo.InvariantCulture)));
        }

        steps.Add(new(tool, IptablesStepKind.AddUnlessPresent, ["-t", "nat", OperationPlaceholder, "OUTPUT", "-p", "tcp", "-j", Chain]));
    }

    private static void AddRemove(List<IptablesStep> steps, string tool)
    {
        // The jump first: from then on traffic goes direct, and the chain can go.
        steps.Add(new(tool, IptablesStepKind.DeleteWhilePresent, ["-t", "nat", OperationPlaceholder, "OUTPUT", "-p", "tcp", "-j", Chain]));
        steps.Add(new(tool, IptablesStepKind.IgnoreFailure, ["-t", "nat", "-F", Chain]));
        steps.Add(new(tool, IptablesStepKind.IgnoreFailure, ["-t", "nat", "-X", Chain]));
    }

    private static IptablesStep Append(string tool, params string[] rule) =>
        new(tool, IptablesStepKind.Run, ["-t", "nat", "-A", Chain, .. rule]);

    /// <summary>"80,443" into ports; null (and the reason) when any is not a TCP port.</summary>
    public static IReadOnlyList<int>? ParsePorts(string text, out string? error)
    {
        var ports = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                error = "'" + part + "' is not a TCP port";
                return null;
            }

            if (!ports.Contains(port))
            {
                ports.Add(port);
            }
        }

        error = ports.Count == 0 ? "names no port" : null;
        return error is null ? ports : null;
    }

    /// <summary>"10.0.0.0/8,fd00::/8" into networks; null (and the reason) when any is not a CIDR.</summary>
    public static IReadOnlyList<IPNetwork>? ParseCidrs(string text, out string? error)
    {
        var networks = new List<IPNetwork>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // A bare address is a /32 (or /128); IPNetwork.TryParse wants the prefix length.
            var candidate = part.Contains('/') ? part : part + (part.Contains(':') ? "/128" : "/32");
            if (!IPNetwork.TryParse(candidate, out var network))
            {
                error = "'" + part + "' is not a CIDR (for example 10.0.0.0/8)";
                return null;
            }

            networks.Add(network);
        }

        error = null;
        return networks;
    }
}
