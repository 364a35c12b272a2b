using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SecretlessProxy.Governance;

/// <summary>
/// Reads audit records (the JSON lines the proxy writes) and proposes policies that would allow
/// exactly the traffic observed: per destination (scheme, host, port) and the policy that observed
/// it, the methods seen, the longest path prefix (split by first path segment when they share none),
/// and a <c>Caller</c> condition from the executables and uids that made the calls. Only traffic
/// that went through is used: refusals are what enforcing should keep refusing.
/// </summary>
internal static class PolicySuggester
{
    /// <summary>Decisions whose requests reached the upstream: the traffic a policy must keep allowing.</summary>
    private static readonly HashSet<string> Observed = new(StringComparer.Ordinal) { "allow", "would-allow", "would-deny", "passthrough" };

    /// <summary>
    /// Suggests policies. <paramref name="existing"/>: the current configuration's <c>Policies</c>
    /// (their Credential and Inject are kept for traffic they observed); <paramref name="fallback"/>:
    /// the Credential and Inject for traffic no policy observed, or null to leave it out (reported).
    /// </summary>
    public static PolicySuggestion Suggest(IEnumerable<string> auditLines, JsonObject? existing, JsonObject? fallback)
    {
        var groups = new SortedDictionary<string, Group>(StringComparer.Ordinal);
        var records = 0;
        foreach (var line in auditLines)
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException)
            {
                continue;
            }

            if (node is not JsonObject record || record["chain"] is not null || record["decision"]?.GetValue<string>() is not { } decision || !Observed.Contains(decision)
                || record["destination"] is not JsonObject destination || record["outcome"]?.GetValue<string>() is not ("forwarded" or "passed-through"))
            {
                continue;
            }

            var scheme = destination["scheme"]?.GetValue<string>() ?? "https";
            var host = destination["host"]?.GetValue<string>() ?? string.Empty;
            var port = destination["port"]?.GetValue<int>() ?? 0;
            var method = destination["method"]?.GetValue<string>() ?? "GET";
            var path = destination["path"]?.GetValue<string>() ?? "/";
            if (host.Length == 0 || method == "CONNECT")
            {
                // A tunnel relayed blind says nothing about the requests inside it.
                continue;
            }

            var policy = record["policy"]?.GetValue<string>();
            var key = (policy ?? string.Empty) + "\n" + scheme + "\n" + host + "\n" + port.ToString(CultureInfo.InvariantCulture);
            if (!groups.TryGetValue(key, out var group))
            {
                groups[key] = group = new Group(policy, scheme, host, port);
            }

            records++;
            group.Methods.Add(method.ToUpperInvariant());
            group.Paths.Add(path);
            if (record["caller"] is JsonObject caller && caller["executable"]?.GetValue<string>() is { } executable && caller["uid"]?.GetValue<int>() is { } uid)
            {
                group.Executables.Add(executable);
                group.Uids.Add(uid);
            }
            else
            {
                group.UnknownCaller = true;
            }
        }

        var policies = new JsonObject();
        var skipped = new List<string>();
        foreach (var group in groups.Values)
        {
            var template = group.Policy is { } name && existing?[name] is JsonObject known ? known : fallback;
            if (template is null)
            {
                skipped.Add(group.Scheme + "://" + group.Host + ":" + group.Port + " (" + string.Join(", ", group.Methods) + " " + string.Join(", ", group.Paths.Take(3)) + (group.Paths.Count > 3 ? ", ..." : string.Empty) + "): no policy observed it, and no --credential was given");
                continue;
            }

            foreach (var (prefix, index, count) in Prefixes(group.Paths))
            {
                var baseName = group.Policy ?? Slug(group.Host + (prefix.Length > 1 ? "-" + prefix : string.Empty));
                var policyName = count > 1 && group.Policy is not null ? baseName + "-" + Slug(prefix) : baseName;
                while (policies.ContainsKey(policyName))
                {
                    policyName += "-" + (index + 2).ToString(CultureInfo.InvariantCulture);
                }

                var match = new JsonObject
                {
                    ["Hosts"] = new JsonArray(group.Host),
                    ["Ports"] = new JsonArray(group.Port),
                    ["Methods"] = new JsonArray([.. group.Methods.Select(m => (JsonNode)m)]),
                };
                if (prefix.Length > 1)
                {
                    match["PathPrefix"] = prefix;
                }

                if (group.Scheme == "http")
                {
                    match["Schemes"] = new JsonArray("http");
                }

                var policy = new JsonObject
                {
                    ["Match"] = match,
                    ["Credential"] = template["Credential"]?.DeepClone(),
                    ["Inject"] = template["Inject"]?.DeepClone(),
                };
                if (!group.UnknownCaller && group.Executables.Count > 0)
                {
                    policy["Caller"] = new JsonObject
                    {
                        ["Uids"] = new JsonArray([.. group.Uids.Select(u => (JsonNode)u)]),
                        ["Executables"] = new JsonArray([.. group.Executables.Select(e => (JsonNode)e)]),
                    };
                }

                policies[policyName] = policy;
            }
        }

        return new PolicySuggestion(policies, records, skipped);
    }

    /// <summary>
    /// The path prefixes one policy per prefix needs: the longest common prefix ending at a '/'; when
    /// the paths share nothing but "/", one per first segment, each with its own longest prefix.
    /// </summary>
    private static IEnumerable<(string Prefix, int Index, int Count)> Prefixes(SortedSet<string> paths)
    {
        var common = CommonDirectory(paths);
        if (common.Length > 1 || paths.Count == 1)
        {
            return [(paths.Count == 1 ? Directory(paths.Min!) : common, 0, 1)];
        }

        var bySegment = paths.GroupBy(p => p.Split('/', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? string.Empty, StringComparer.Ordinal).ToList();
        return bySegment.Select((g, i) => (g.Count() == 1 ? Directory(g.First()) : CommonDirectory(g), i, bySegment.Count));
    }

    /// <summary>"/v1/orders/7" → "/v1/orders/": the folder a single observed path lives in.</summary>
    private static string Directory(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash <= 0 ? "/" : path[..(slash + 1)];
    }

    private static string CommonDirectory(IEnumerable<string> paths)
    {
        string? common = null;
        foreach (var path in paths)
        {
            var directory = Directory(path);
            if (common is null)
            {
                common = directory;
                continue;
            }

            var length = 0;
            while (length < common.Length && length < directory.Length && common[length] == directory[length])
            {
                length++;
            }

            common = common[..length];
        }

        common ??= "/";
        var end = common.LastIndexOf('/');
        return end < 0 ? "/" : common[..(end + 1)];
    }

    private static string Slug(string text)
    {
        var builder = new StringBuilder();
        foreach (var c in text)
        {
            builder.Append(char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-');
        }

        return builder.ToString().Trim('-').Replace("--", "-", StringComparison.Ordinal);
    }

    private sealed class Group(string? policy, string scheme, string host, int port)
    {
        public string? Policy { get; } = policy;

        public string Scheme { get; } = scheme;

        public string Host { get; } = host;

        public int Port { get; } = port;

        public SortedSet<string> Methods { get; } = new(StringComparer.Ordinal);

        public SortedSet<string> Paths { get; } = new(StringComparer.Ordinal);

        public SortedSet<string> Executables { get; } = new(StringComparer.Ordinal);

        public SortedSet<int> Uids { get; } = [];

        public bool UnknownCaller { get; set; }
    }
}
