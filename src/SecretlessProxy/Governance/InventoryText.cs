using System.Globalization;
using System.Text;

namespace SecretlessProxy.Governance;

/// <summary>
/// <see cref="InventoryReport"/> as text: four tables (credentials ranked by reach, their reach per
/// policy, how each rotates and is revoked, the findings), aligned for a terminal or as Markdown
/// for a review document.
/// </summary>
internal static class InventoryText
{
    private const string Any = "any";

    public static string Render(InventoryReport report, bool markdown)
    {
        ArgumentNullException.ThrowIfNull(report);
        var entries = report.Credentials;
        var text = new StringBuilder();
        Table(text, markdown, "Credentials, widest reach first",
            ["RANK", "SCORE", "CREDENTIAL", "SOURCE", "ISSUING SYSTEM", "OWNER", "FINDINGS"],
            entries.Select(e => new[] { Number(e.Rank), Number(e.ReachScore), e.Name, e.Source, e.IssuingSystem, Owner(e), e.Findings.Count == 0 ? "-" : string.Join(",", e.Findings.Select(f => f.Code).Distinct()) }));
        Table(text, markdown, "Reach",
            ["CREDENTIAL", "POLICY", "KIND", "LISTENERS", "HOSTS", "PORTS", "METHODS", "PATH", "CALLER", "IDENTITY", "WHEN", "SCORE"],
            entries.SelectMany(e => e.Reach.Select(r => new[]
            {
                e.Name, r.Policy, r.Kind + " (" + r.Injection + ")", r.Listeners.Count == 0 ? "none" : string.Join(",", r.Listeners), string.Join(",", r.Hosts),
                r.Ports is null ? Any : string.Join(",", r.Ports.Select(Number)), r.Kind == "database" ? "-" : r.Methods is null ? Any : string.Join(",", r.Methods),
                r.PathPrefix.Length == 0 ? Any : r.PathPrefix, Caller(r.Caller), Identity(r.Identity), r.When ?? Any, Number(r.Score),
            })));
        Table(text, markdown, "Rotation and revocation",
            ["CREDENTIAL", "ROTATION", "LIFETIME", "REVOCATION"],
            entries.Select(e => new[] { e.Name, e.Rotation, e.ObservedLifetime is null ? e.Lifetime : e.Lifetime + "; observed " + e.ObservedLifetime, e.Revocation }));
        Table(text, markdown, "Findings",
            ["CREDENTIAL", "FINDING", "DETAIL"],
            entries.SelectMany(e => e.Findings.Select(f => new[] { e.Name, f.Code, f.Detail })));
        if (entries.Any(e => e.Uses is not null))
        {
            Table(text, markdown, "Uses since " + report.UsesSince?.ToString("O", CultureInfo.InvariantCulture),
                ["CREDENTIAL", "POLICY", "LISTENER", "DESTINATION", "CALLER", "IDENTITY", "COUNT", "LAST USE"],
                entries.SelectMany(e => (e.Uses ?? []).Select(u => new[] { e.Name, u.Policy, u.Listener, u.Destination, u.Caller, u.Identity ?? "-", u.Count.ToString(CultureInfo.InvariantCulture), u.LastUse.ToString("O", CultureInfo.InvariantCulture) })));
        }

        return text.ToString();
    }

    private static string Number(int n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Owner(InventoryEntry e)
    {
        if (e.Owner is not { } o)
        {
            return "-";
        }

        var parts = new List<string>();
        if (o.Business is not null)
        {
            parts.Add("business: " + o.Business);
        }

        if (o.Technical is not null)
        {
            parts.Add("technical: " + o.Technical);
        }

        if (o.Contact is not null)
        {
            parts.Add("contact: " + o.Contact);
        }

        return string.Join("; ", parts);
    }

    private static string Caller(InventoryCaller? c)
    {
        if (c is null)
        {
            return Any;
        }

        var parts = new List<string>();
        if (c.Uids is not null)
        {
            parts.Add("uid " + string.Join(",", c.Uids.Select(Number)));
        }

        if (c.Executables is not null)
        {
            parts.Add("exe " + string.Join(",", c.Executables));
        }

        if (c.ExecutableSha256 is not null)
        {
            parts.Add("sha256 " + string.Join(",", c.ExecutableSha256));
        }

        return string.Join("; ", parts);
    }

    private static string Identity(InventoryIdentity? i)
    {
        if (i is null)
        {
            return Any;
        }

        var parts = new List<string>();
        if (i.Subjects is not null)
        {
            parts.Add("sub " + string.Join(",", i.Subjects));
        }

        if (i.Issuers is not null)
        {
            parts.Add("iss " + string.Join(",", i.Issuers));
        }

        if (i.Audiences is not null)
        {
            parts.Add("aud " + string.Join(",", i.Audiences));
        }

        if (i.Namespaces is not null)
        {
            parts.Add("ns " + string.Join(",", i.Namespaces));
        }

        if (i.ServiceAccounts is not null)
        {
            parts.Add("sa " + string.Join(",", i.ServiceAccounts));
        }

        return string.Join("; ", parts);
    }

    private static void Table(StringBuilder text, bool markdown, string title, string[] header, IEnumerable<string[]> rows)
    {
        var body = rows.ToList();
        if (text.Length > 0)
        {
            text.Append('\n');
        }

        text.Append(markdown ? "## " + title : title).Append('\n');
        if (markdown)
        {
            text.Append('\n');
            Row(text, header.Select(Markdown));
            Row(text, header.Select(_ => "---"));
            foreach (var row in body)
            {
                Row(text, row.Select(Markdown));
            }

            return;
        }

        var widths = header.Select((h, i) => Math.Max(h.Length, body.Count == 0 ? 0 : body.Max(r => r[i].Length))).ToArray();
        foreach (var row in body.Prepend(header))
        {
            text.Append(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd()).Append('\n');
        }

        if (body.Count == 0)
        {
            text.Append("(none)\n");
        }
    }

    private static void Row(StringBuilder text, IEnumerable<string> cells) => text.Append("| ").Append(string.Join(" | ", cells)).Append(" |\n");

    /// <summary>A table cell: a pipe would end it and a line break would end the row.</summary>
    private static string Markdown(string cell) => cell.Replace("|", "\\|", StringComparison.Ordinal).Replace('\n', ' ');
}
