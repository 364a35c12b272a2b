using System.Globalization;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Injection;
using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Governance;

/// <summary>
/// Computes the credential inventory of a compiled configuration: one entry per credential (and
/// per client certificate a policy presents) with its issuer, owner, rotation and revocation, and
/// its reach, read from the policies and listeners, so it holds for a credential never used yet.
/// Policies whose <c>Labels</c> are for another environment do not exist here and are left out.
/// </summary>
internal static class CredentialInventory
{
    /// <summary>The source name shown for a certificate presented with <c>Inject:ClientCertificate</c>.</summary>
    public const string ClientCertificateSource = "ClientCertificate";

    public static InventoryReport Build(ProxySnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var policies = snapshot.Policies.Policies.Where(p => p.Conditions.LabelsMatch).ToArray();
        var namedLogins = new HashSet<string>(
            policies.Where(p => p.Injection.Target == InjectionTarget.DatabaseLogin && p.CredentialName.Length > 0).Select(p => p.CredentialName),
            StringComparer.OrdinalIgnoreCase);
        var listeners = snapshot.Listeners.Values.OrderBy(l => l.Name, StringComparer.Ordinal).ToArray();

        var drafts = new List<InventoryEntry>();
        foreach (var credential in snapshot.Credentials)
        {
            var reach = HttpReach(credential.Name, policies, listeners)
                .Concat(DatabaseReach(credential.Name, policies, listeners, namedLogins))
                .ToList();
            drafts.Add(Entry(credential.Name, credential.Source.Kind, credential.Source.Describe(), credential.Owner, reach, listeners));
        }

        // A client certificate is a credential too, though no Credentials entry names it: one entry
        // per certificate file, named as the policy writes it (as audit records and spans name it).
        foreach (var certificate in policies.Where(p => p.Injection is ClientCertificateInjector { CertFile: not null }).GroupBy(p => p.CredentialName, StringComparer.Ordinal))
        {
            var files = (ClientCertificateInjector)certificate.First().Injection;
            var description = new CredentialSourceDescription(
                "certificate file " + files.CertFile + " (key " + files.KeyFile + ")",
                "re-read when the files change; the next new upstream connection presents the new certificate",
                "the certificate's validity period",
                "none at the proxy: the certificate stays valid until it expires or its CA revokes it; remove the policy to stop presenting it");
            var reach = certificate.Select(p => Reach(p, "http", p.Hosts.Select(h => h.Text).ToArray(), p.Ports, p.Methods, listeners.Where(l => CanInject(l, p)).Select(l => l.Name).ToArray())).ToList();
            drafts.Add(Entry(certificate.Key, ClientCertificateSource, description, null, reach, listeners));
        }

        var ranked = drafts
            .OrderByDescending(e => e.ReachScore)
            .ThenByDescending(e => e.Findings.Count)
            .ThenBy(e => e.Name, StringComparer.Ordinal)
            .Select((e, i) => e with { Rank = i + 1 })
            .ToArray();
        return new InventoryReport(ranked);
    }

    /// <summary>
    /// The same report with what the running proxy saw: uses since start per destination and caller
    /// (most used first) and each cached value's issued lifetime.
    /// </summary>
    public static InventoryReport WithRunTime(InventoryReport report, CredentialUseLog uses, IReadOnlyList<CredentialStatus> statuses)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(uses);
        var byCredential = uses.Uses().ToLookup(u => u.Credential, StringComparer.OrdinalIgnoreCase);
        var status = statuses.ToDictionary(s => s.Name, StringComparer.OrdinalIgnoreCase);
        var entries = report.Credentials.Select(e => e with
        {
            ObservedLifetime = status.TryGetValue(e.Name, out var s) && s.ExpiresAt is { } expires && s.LastRefresh is { } refreshed
                ? (expires - refreshed).ToString("c", CultureInfo.InvariantCulture)
                : null,
            Uses = byCredential[e.Name]
                .OrderByDescending(u => u.Count)
                .ThenBy(u => u.Destination, StringComparer.Ordinal)
                .ThenBy(u => u.Caller, StringComparer.Ordinal)
                .Select(u => new InventoryUse(u.Policy, u.Listener, u.Destination, u.Caller, u.Identity, u.Count, u.LastUse))
                .ToArray(),
        }).ToArray();
        return report with { Credentials = entries, UsesSince = uses.Since, UsesNotItemised = uses.NotRecorded };
    }

    private static InventoryEntry Entry(string name, string source, CredentialSourceDescription description, CredentialOwner? owner, List<InventoryReach> reach, IReadOnlyList<ListenerDefinition> listeners)
    {
        var findings = new List<InventoryFinding>();
        foreach (var r in reach)
        {
            if (r.Caller is null && r.Identity is null)
            {
                findings.Add(new(FindingCodes.NoCallerOrIdentityCondition, "policy '" + r.Policy + "' injects it for any calling process and any workload identity"));
            }

            foreach (var host in r.Hosts.Where(h => h.StartsWith("*.", StringComparison.Ordinal)))
            {
                findings.Add(new(FindingCodes.WildcardHost, "policy '" + r.Policy + "' matches " + host + ": every host below it, present and future"));
            }

            if (r.Kind == "http" && r.Methods is null)
            {
                findings.Add(new(FindingCodes.EveryMethod, "policy '" + r.Policy + "' matches every method, writes and deletes included"));
            }
        }

        foreach (var listener in reach.SelectMany(r => r.Listeners).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            if (listeners.FirstOrDefault(l => l.Name == listener) is { } passThrough && passThrough.Unmatched.LetsThrough())
            {
                findings.Add(new(FindingCodes.PassThroughListener, "listener '" + listener + "' (" + passThrough.Mode + ") has Unmatched " + passThrough.Unmatched + ": " + (passThrough.Http == HttpDestination.Upstream
                    ? "the app it serves also sends its upstream every request no policy matches, with nothing injected and no policy asked"
                    : "the app it serves also reaches every host no policy covers, tunnels relayed blind")));
            }
        }

        if (description.LongLived)
        {
            findings.Add(new(FindingCodes.LongLivedFileSecret, "the value never expires on its own: a copy stays valid until the file is rotated and the old value retired"));
        }

        if (owner is not { Business: not null } and not { Technical: not null })
        {
            findings.Add(new(FindingCodes.NoOwner, source == ClientCertificateSource
                ? "a client certificate has no Owner key: name its owner in the policy's documentation"
                : "no business or technical owner: set Owner on the credential"));
        }

        return new InventoryEntry(0, name, source, description.IssuingSystem, owner, description.Rotation, description.Lifetime, description.Revocation, reach.Sum(r => r.Score), reach, findings);
    }

    /// <summary>Policies that inject <paramref name="credential"/> into HTTP requests.</summary>
    private static IEnumerable<InventoryReach> HttpReach(string credential, IReadOnlyList<CompiledPolicy> policies, IReadOnlyList<ListenerDefinition> listeners)
    {
        foreach (var policy in policies.Where(p => p.Injection.Target == InjectionTarget.HttpRequest && string.Equals(p.CredentialName, credential, StringComparison.OrdinalIgnoreCase)))
        {
            var through = listeners.Where(l => CanInject(l, policy)).Select(l => l.Name).ToArray();
            yield return Reach(policy, "http", policy.Hosts.Select(h => h.Text).ToArray(), policy.Ports, policy.Methods, through);
        }
    }

    /// <summary>
    /// A listener can inject a policy's credential when its kind performs that injection and, for a
    /// listener with a fixed upstream (Route), when the policy matches that upstream.
    /// </summary>
    private static bool CanInject(ListenerDefinition listener, CompiledPolicy policy) =>
        listener.Injects.Contains(policy.Injection.Target) &&
        (listener.Http != HttpDestination.Upstream || listener.Upstream is not { } upstream || Matches(policy, upstream.Host, upstream.Port));

    /// <summary>
    /// Database listeners that log in with <paramref name="credential"/>, through each DatabaseLogin
    /// policy for that login: those naming it, or those naming none when no policy names it (as
    /// <see cref="PolicySet.EvaluateLogin"/> decides). A policy naming it with no listener to use it
    /// is still listed, with its own hosts and no listener.
    /// </summary>
    private static IEnumerable<InventoryReach> DatabaseReach(string credential, IReadOnlyList<CompiledPolicy> policies, IReadOnlyList<ListenerDefinition> listeners, HashSet<string> namedLogins)
    {
        var databases = listeners
            .Where(l => l.Settings is DatabaseListenerSettings d && string.Equals(d.CredentialName, credential, StringComparison.OrdinalIgnoreCase))
            .ToArray();
        foreach (var policy in policies.Where(p => p.Injection.Target == InjectionTarget.DatabaseLogin))
        {
            var named = policy.CredentialName.Length > 0;
            if (named ? !string.Equals(policy.CredentialName, credential, StringComparison.OrdinalIgnoreCase) : namedLogins.Contains(credential))
            {
                continue;
            }

            var through = databases.Where(l => l.Settings is DatabaseListenerSettings d && Matches(policy, d.Host, d.Port)).ToArray();
            if (through.Length == 0)
            {
                if (named)
                {
                    yield return Reach(policy, "database", policy.Hosts.Select(h => h.Text).ToArray(), policy.Ports, null, []);
                }

                continue;
            }

            var settings = through.Select(l => (DatabaseListenerSettings)l.Settings!).ToArray();
            yield return Reach(
                policy,
                "database",
                settings.Select(d => d.Host).Distinct(StringComparer.OrdinalIgnoreCase).ToArray(),
                settings.Select(d => d.Port).Distinct().Order().ToArray(),
                null,
                through.Select(l => l.Name).ToArray());
        }
    }

    private static bool Matches(CompiledPolicy policy, string host, int port) =>
        (policy.Ports is null || policy.Ports.Contains(port)) && policy.Hosts.Any(h => h.Matches(host));

    private static InventoryReach Reach(CompiledPolicy policy, string kind, IReadOnlyList<string> hosts, IReadOnlyList<int>? ports, IReadOnlyList<string>? methods, IReadOnlyList<string> listeners)
    {
        var c = policy.Conditions;
        var caller = c.Caller is { } cc ? new InventoryCaller(cc.Uids?.Order().ToArray(), Sorted(cc.Executables), Sorted(cc.ExecutableSha256)) : null;
        var identity = c.Identity is { } ic ? new InventoryIdentity(Sorted(ic.Subjects), Sorted(ic.Issuers), Sorted(ic.Audiences), Sorted(ic.Namespaces), Sorted(ic.ServiceAccounts)) : null;
        return new InventoryReach(
            policy.Name, kind, policy.Injection.Kind, hosts, ports, methods, policy.PathPrefix, listeners, caller, identity, Describe(c.When),
            ReachScore.For(policy, kind == "database", listeners.Count));
    }

    private static string[]? Sorted(IEnumerable<string>? values) => values?.Order(StringComparer.Ordinal).ToArray();

    /// <summary><c>Mon,Tue,Wed 09:00-17:00 Europe/Berlin</c>; a part that does not constrain is left out.</summary>
    private static string? Describe(TimeWindow? when)
    {
        if (when is null)
        {
            return null;
        }

        var parts = new List<string>();
        if (when.Days is { } days)
        {
            // Monday first, as a working week reads.
            parts.Add(string.Join(",", days.OrderBy(d => ((int)d + 6) % 7).Select(d => d.ToString()[..3])));
        }

        if (when.Start is { } start && when.End is { } end)
        {
            parts.Add(start.ToString("HH:mm", CultureInfo.InvariantCulture) + "-" + end.ToString("HH:mm", CultureInfo.InvariantCulture));
        }

        parts.Add(when.TimeZone.Id);
        return string.Join(" ", parts);
    }
}
