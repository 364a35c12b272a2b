using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// The configuration reference (docs/configuration) checked against appsettings.schema.json, so
/// that neither can change without the other. Pages mark the keys they document in key tables:
/// an HTML comment <c>&lt;!-- keys: #/definitions/Listener Mode=Postgres --&gt;</c> naming a place
/// in the schema (and, for a listener mode's or credential source's page, which one), then a
/// Markdown table whose first column holds keys in backticks, nested ones joined by ':' as
/// <c>validate</c> prints them. docs/configuration/README.md explains it to writers.
/// </summary>
public sealed partial class ConfigurationReferenceTests
{
    private const string Definitions = "#/definitions/";

    /// <summary>Schema definitions whose keys belong on the pages of one folder, and the enum that names their pages.</summary>
    private static readonly (string Definition, string Folder, string KindProperty)[] Kinds =
    [
        ("Listener", "listeners/", "Mode"),
        ("Credential", "credentials/", "Source"),
    ];

    [Fact]
    public void Every_key_table_is_well_formed_and_names_only_keys_the_schema_has()
    {
        var reference = Reference.Load();

        var problems = reference.FormatProblems.Concat(reference.Resolve(Schema.Load()).Problems).ToList();

        Assert.True(reference.Tables.Count >= 20, "only " + reference.Tables.Count + " key tables found under docs/configuration");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Every_key_in_the_schema_is_documented_in_a_key_table()
    {
        var schema = Schema.Load();

        var problems = UndocumentedKeys(schema, Reference.Load());

        Assert.True(schema.Properties.Count > 100, "only " + schema.Properties.Count + " properties found in the schema");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Listener_keys_are_on_listener_pages_and_credential_keys_on_credential_pages()
    {
        var problems = KeysOffTheirFolder(Schema.Load(), Reference.Load());

        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Every_listener_mode_and_credential_source_has_one_page_listing_the_keys_that_name_it()
    {
        var problems = KindPageProblems(Schema.Load(), Reference.Load());

        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Every_top_level_section_has_a_row_in_the_index_that_links_to_its_page()
    {
        var schema = Schema.Load();
        var reference = Reference.Load();
        var sections = schema.PropertyNames(Definitions + "SecretlessProxy");
        var rows = reference.Tables
            .Where(t => t.Page == "README.md" && schema.Resolve(t.Pointer) == Definitions + "SecretlessProxy")
            .SelectMany(t => t.Keys)
            .ToList();
        var problems = new List<string>();

        foreach (var section in sections)
        {
            var row = rows.FirstOrDefault(r => r.Key == section);
            if (row is null)
            {
                problems.Add("docs/configuration/README.md: the sections table has no row for " + section);
                continue;
            }

            var link = LinkPattern().Match(StripCode(row.Row));
            var target = link.Success ? link.Groups[1].Value.Split('#')[0] : string.Empty;
            if (target.Length == 0 || !PathExists(Path.Combine(reference.Root, target)))
            {
                problems.Add("docs/configuration/README.md:" + row.Line + ": the row for " + section + " links to no existing page");
            }
        }

        Assert.NotEmpty(sections);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Relative_links_in_the_documentation_reach_an_existing_file_and_heading()
    {
        var files = new[] { "README.md", "docs/threat-model.md", "docs/extending.md" }
            .Select(f => RepoPaths.Combine(f.Split('/')))
            .Concat(Directory.GetFiles(RepoPaths.Combine("docs", "configuration"), "*.md", SearchOption.AllDirectories))
            .ToList();
        var problems = new List<string>();
        var links = 0;

        foreach (var file in files)
        {
            var lines = WithoutCodeBlocks(File.ReadAllText(file));
            for (var i = 0; i < lines.Length; i++)
            {
                foreach (Match link in LinkPattern().Matches(StripCode(lines[i])))
                {
                    var target = link.Groups[1].Value;
                    if (UriSchemePattern().IsMatch(target))
                    {
                        continue;
                    }

                    links++;
                    var hash = target.IndexOf('#', StringComparison.Ordinal);
                    var path = hash < 0 ? target : target[..hash];
                    var anchor = hash < 0 ? null : target[(hash + 1)..];
                    var resolved = path.Length == 0 ? file : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, path));
                    var where = Path.GetRelativePath(RepoPaths.Root, file).Replace('\\', '/') + ":" + (i + 1) + ": " + target;
                    if (!PathExists(resolved))
                    {
                        problems.Add(where + " names no existing file");
                    }
                    else if (anchor is not null && resolved.EndsWith(".md", StringComparison.Ordinal) && !HeadingAnchors(File.ReadAllText(resolved)).Contains(anchor))
                    {
                        problems.Add(where + " names no heading of " + Path.GetFileName(resolved));
                    }
                }
            }
        }

        Assert.True(links > 50, "only " + links + " relative links found");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    /// <summary>The checks above must be able to fail: a page that loses a row, or gains a key the schema lacks, is reported.</summary>
    [Fact]
    public void A_row_removed_from_a_page_or_a_key_the_schema_lacks_is_reported()
    {
        var schema = Schema.Load();
        var pages = Reference.ReadPages();
        const string Page = "listeners/postgres.md";
        var serverName = Row(pages[Page], "Tls:ServerName");
        var credential = Row(pages[Page], "Credential");
        // Off every page that has it (the MySql page documents Tls:ServerName too).
        var withoutServerName = pages.ToDictionary(p => p.Key, p => string.Join('\n', p.Value.Split('\n').Where(l => !l.StartsWith("| `Tls:ServerName` |", StringComparison.Ordinal))));
        var withoutCredential = new Dictionary<string, string>(pages) { [Page] = pages[Page].Replace(credential + "\n", string.Empty, StringComparison.Ordinal) };
        var withBogusKey = new Dictionary<string, string>(pages) { [Page] = pages[Page].Replace(serverName, serverName + "\n| `Tls:Cipher` | | not a key |", StringComparison.Ordinal) };

        Assert.Empty(UndocumentedKeys(schema, Reference.Parse(pages)));
        Assert.Empty(KindPageProblems(schema, Reference.Parse(pages)));
        Assert.Empty(Reference.Parse(pages).Resolve(schema).Problems);

        Assert.Contains(UndocumentedKeys(schema, Reference.Parse(withoutServerName)), p => p.StartsWith("Listener:Tls:ServerName ", StringComparison.Ordinal));
        // Listener.Credential's description says "Postgres mode: ...": off the Postgres page it is reported there too.
        Assert.Contains(KindPageProblems(schema, Reference.Parse(withoutCredential)), p => p.StartsWith("Listener:Credential:", StringComparison.Ordinal) && p.Contains("listeners/postgres.md", StringComparison.Ordinal));
        Assert.Contains(Reference.Parse(withBogusKey).Resolve(schema).Problems, p => p.Contains("listeners/postgres.md", StringComparison.Ordinal) && p.Contains("Tls:Cipher", StringComparison.Ordinal));
    }

    private static string Row(string page, string key) =>
        page.Split('\n').Single(l => l.StartsWith("| `" + key + "` |", StringComparison.Ordinal));

    private static List<string> UndocumentedKeys(Schema schema, Reference reference)
    {
        var documented = reference.Resolve(schema).Documented;
        return schema.Properties.Keys
            .Where(location => !documented.ContainsKey(location))
            .Select(location => Schema.Display(location) + " is in appsettings.schema.json but in no key table under docs/configuration")
            .ToList();
    }

    private static List<string> KeysOffTheirFolder(Schema schema, Reference reference)
    {
        var documented = reference.Resolve(schema).Documented;
        var problems = new List<string>();
        foreach (var (definition, folder, _) in Kinds)
        {
            foreach (var location in schema.Properties.Keys.Where(l => l.StartsWith(Definitions + definition + "/", StringComparison.Ordinal)))
            {
                if (!documented.TryGetValue(location, out var pages) || !pages.Any(p => p.StartsWith(folder, StringComparison.Ordinal)))
                {
                    problems.Add(Schema.Display(location) + " is on no page under docs/configuration/" + folder);
                }
            }
        }

        return problems;
    }

    private static List<string> KindPageProblems(Schema schema, Reference reference)
    {
        var documented = reference.Resolve(schema).Documented;
        var problems = new List<string>();
        foreach (var (definition, folder, kindProperty) in Kinds)
        {
            var values = schema.EnumValues(Definitions + definition + "/properties/" + kindProperty);
            if (values.Count == 0)
            {
                problems.Add(definition + "." + kindProperty + " has no enum in the schema");
            }

            foreach (var value in values)
            {
                var pages = reference.Tables
                    .Where(t => t.KindProperty == kindProperty && t.KindValue == value && schema.Resolve(t.Pointer) == Definitions + definition)
                    .Select(t => t.Page)
                    .Distinct()
                    .ToList();
                if (pages.Count != 1 || !pages[0].StartsWith(folder, StringComparison.Ordinal))
                {
                    problems.Add(kindProperty + " " + value + " needs exactly one page under docs/configuration/" + folder + " with a table marked " + kindProperty + "=" + value + "; found " + (pages.Count == 0 ? "none" : string.Join(", ", pages)));
                    continue;
                }

                // A key whose description names the mode or source ("Postgres mode: ...", "Vault: ...") belongs on its page.
                var naming = new Regex(@"\b" + Regex.Escape(value) + @"\b", RegexOptions.CultureInvariant);
                foreach (var (location, description) in schema.Properties.Where(p => p.Key.StartsWith(Definitions + definition + "/", StringComparison.Ordinal)))
                {
                    if (naming.IsMatch(description) && !(documented.TryGetValue(location, out var on) && on.Contains(pages[0])))
                    {
                        problems.Add(Schema.Display(location) + ": its schema description names " + value + ", but " + pages[0] + " does not document it");
                    }
                }
            }
        }

        return problems;
    }

    private static bool PathExists(string path) => File.Exists(path) || Directory.Exists(path);

    private static string StripCode(string line) => InlineCodePattern().Replace(line, string.Empty);

    /// <summary>The page's lines, with fenced code blocks blanked so examples are neither tables nor links.</summary>
    private static string[] WithoutCodeBlocks(string text)
    {
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var fenced = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var fence = lines[i].StartsWith("```", StringComparison.Ordinal);
            if (fence)
            {
                fenced = !fenced;
            }

            if (fence || fenced)
            {
                lines[i] = string.Empty;
            }
        }

        return lines;
    }

    /// <summary>The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as '-', repeats numbered.</summary>
    private static HashSet<string> HeadingAnchors(string text)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var line in WithoutCodeBlocks(text))
        {
            var heading = HeadingPattern().Match(line);
            if (!heading.Success)
            {
                continue;
            }

            var slug = new StringBuilder();
            foreach (var c in heading.Groups[1].Value.ToLowerInvariant())
            {
                if (char.IsLetterOrDigit(c) || c is '-' or '_')
                {
                    slug.Append(c);
                }
                else if (c == ' ')
                {
                    slug.Append('-');
                }
            }

            var anchor = slug.ToString();
            var count = seen.GetValueOrDefault(anchor);
            seen[anchor] = count + 1;
            anchors.Add(count == 0 ? anchor : anchor + "-" + count);
        }

        return anchors;
    }

    [GeneratedRegex(@"^<!-- keys: (#\S*)(?: (\w+)=(\w+))? -->\s*$")]
    private static partial Regex MarkerPattern();

    [GeneratedRegex(@"^\s*`[^`]+`(\s*,\s*`[^`]+`)*\s*$")]
    private static partial Regex KeyCellPattern();

    [GeneratedRegex(@"^\|[\s:|-]+\|\s*$")]
    private static partial Regex SeparatorPattern();

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex LinkPattern();

    [GeneratedRegex(@"`[^`]*`")]
    private static partial Regex InlineCodePattern();

    [GeneratedRegex(@"^[a-zA-Z][a-zA-Z0-9+.-]*:")]
    private static partial Regex UriSchemePattern();

    [GeneratedRegex(@"^#{1,6}\s+(.*?)\s*#*\s*$")]
    private static partial Regex HeadingPattern();

    /// <summary>appsettings.schema.json, addressed by JSON pointer, with every property's location and description.</summary>
    private sealed class Schema
    {
        private readonly JsonElement _root;

        private Schema(JsonElement root)
        {
            _root = root;
            Walk(Definitions + "SecretlessProxy", new HashSet<string>(StringComparer.Ordinal));
        }

        /// <summary>Every property, keyed by its location after <c>$ref</c>s are followed (<c>#/definitions/Listener/properties/Tls/properties/Mode</c>).</summary>
        public Dictionary<string, string> Properties { get; } = new(StringComparer.Ordinal);

        public static Schema Load()
        {
            using var document = JsonDocument.Parse(File.ReadAllText(RepoPaths.Combine("appsettings.schema.json")));
            return new Schema(document.RootElement.Clone());
        }

        /// <summary><c>#/definitions/Listener/properties/Tls/properties/Mode</c> as <c>Listener:Tls:Mode</c>.</summary>
        public static string Display(string location) =>
            location.Replace(Definitions, string.Empty, StringComparison.Ordinal).Replace("/properties/", ":", StringComparison.Ordinal).Replace("/additionalProperties", ":*", StringComparison.Ordinal);

        public JsonElement? Get(string pointer)
        {
            if (!pointer.StartsWith('#'))
            {
                return null;
            }

            var node = _root;
            foreach (var part in pointer[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var name = part.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                if (node.ValueKind != JsonValueKind.Object || !node.TryGetProperty(name, out var child))
                {
                    return null;
                }

                node = child;
            }

            return node;
        }

        /// <summary>The pointer after following <c>$ref</c>s, or null when it leads nowhere.</summary>
        public string? Resolve(string pointer)
        {
            for (var hops = 0; hops < 16; hops++)
            {
                if (Get(pointer) is not { } node)
                {
                    return null;
                }

                if (node.ValueKind != JsonValueKind.Object || !node.TryGetProperty("$ref", out var target))
                {
                    return pointer;
                }

                pointer = target.GetString()!;
            }

            return null;
        }

        public List<string> PropertyNames(string pointer) =>
            Resolve(pointer) is { } resolved && Get(resolved + "/properties") is { ValueKind: JsonValueKind.Object } properties
                ? properties.EnumerateObject().Select(p => p.Name).ToList()
                : [];

        public List<string> EnumValues(string pointer) =>
            Resolve(pointer) is { } resolved && Get(resolved + "/enum") is { ValueKind: JsonValueKind.Array } values
                ? values.EnumerateArray().Select(v => v.GetString()!).ToList()
                : [];

        private void Walk(string pointer, HashSet<string> visited)
        {
            if (Resolve(pointer) is not { } node || !visited.Add(node))
            {
                return;
            }

            foreach (var name in PropertyNames(node))
            {
                var location = node + "/properties/" + name;
                Properties[location] = Get(location) is { ValueKind: JsonValueKind.Object } property && property.TryGetProperty("description", out var description)
                    ? description.GetString() ?? string.Empty
                    : string.Empty;
                Walk(location, visited);
            }

            // Named maps (Listeners, Credentials, Policies) and arrays hold objects whose keys count too.
            foreach (var child in new[] { "additionalProperties", "items" })
            {
                if (Get(node + "/" + child) is { ValueKind: JsonValueKind.Object })
                {
                    Walk(node + "/" + child, visited);
                }
            }
        }
    }

    private sealed record KeyRow(string Key, int Line, string Row);

    private sealed record KeyTable(string Page, int Line, string Pointer, string? KindProperty, string? KindValue, List<KeyRow> Keys);

    /// <summary>What the key tables document: for each schema location, the pages (relative to docs/configuration) that list it.</summary>
    private sealed record Resolution(Dictionary<string, HashSet<string>> Documented, List<string> Problems);

    /// <summary>The key tables of docs/configuration.</summary>
    private sealed class Reference
    {
        private Reference(string root)
        {
            Root = root;
        }

        public string Root { get; }

        public List<KeyTable> Tables { get; } = [];

        public List<string> FormatProblems { get; } = [];

        public static Reference Load() => Parse(ReadPages());

        /// <summary>Every page under docs/configuration by its path relative to that folder, '/'-separated.</summary>
        public static Dictionary<string, string> ReadPages()
        {
            var root = RepoPaths.Combine("docs", "configuration");
            return Directory.GetFiles(root, "*.md", SearchOption.AllDirectories)
                .ToDictionary(f => Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllText, StringComparer.Ordinal);
        }

        public static Reference Parse(Dictionary<string, string> pages)
        {
            var reference = new Reference(RepoPaths.Combine("docs", "configuration"));
            foreach (var (page, text) in pages.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                reference.ParsePage(page, WithoutCodeBlocks(text));
            }

            return reference;
        }

        public Resolution Resolve(Schema schema)
        {
            var documented = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            var problems = new List<string>();
            foreach (var table in Tables)
            {
                var where = "docs/configuration/" + table.Page + ":" + table.Line;
                if (schema.Resolve(table.Pointer) is not { } node)
                {
                    problems.Add(where + ": " + table.Pointer + " is not in appsettings.schema.json");
                    continue;
                }

                if (table.KindProperty is not null && !schema.EnumValues(node + "/properties/" + table.KindProperty).Contains(table.KindValue!))
                {
                    problems.Add(where + ": " + table.KindProperty + "=" + table.KindValue + " is not a value of " + Schema.Display(node + "/properties/" + table.KindProperty));
                }

                foreach (var row in table.Keys)
                {
                    // Each segment is a property of the one before; documenting Tls:Mode documents Tls as well.
                    var current = node;
                    foreach (var segment in row.Key.Split(':'))
                    {
                        var location = current + "/properties/" + segment;
                        if (!schema.Properties.ContainsKey(location))
                        {
                            problems.Add("docs/configuration/" + table.Page + ":" + row.Line + ": " + row.Key + " is not a key of " + Schema.Display(node) + " in appsettings.schema.json");
                            break;
                        }

                        if (!documented.TryGetValue(location, out var onPages))
                        {
                            documented[location] = onPages = new HashSet<string>(StringComparer.Ordinal);
                        }

                        onPages.Add(table.Page);
                        current = schema.Resolve(location) ?? location;
                    }
                }
            }

            return new Resolution(documented, problems);
        }

        private void ParsePage(string page, string[] lines)
        {
            for (var i = 0; i < lines.Length; i++)
            {
                var marker = MarkerPattern().Match(lines[i]);
                if (!marker.Success)
                {
                    if (lines[i].Contains("<!-- keys:", StringComparison.Ordinal))
                    {
                        FormatProblems.Add("docs/configuration/" + page + ":" + (i + 1) + ": a keys marker must read <!-- keys: #/pointer --> or <!-- keys: #/pointer Property=Value -->");
                    }

                    continue;
                }

                var header = i + 1;
                while (header < lines.Length && lines[header].Trim().Length == 0)
                {
                    header++;
                }

                if (header + 1 >= lines.Length || !lines[header].StartsWith('|') || !SeparatorPattern().IsMatch(lines[header + 1]))
                {
                    FormatProblems.Add("docs/configuration/" + page + ":" + (i + 1) + ": a keys marker is not followed by a table");
                    continue;
                }

                var table = new KeyTable(page, i + 1, marker.Groups[1].Value, marker.Groups[2].Success ? marker.Groups[2].Value : null, marker.Groups[3].Success ? marker.Groups[3].Value : null, []);
                var row = header + 2;
                for (; row < lines.Length && lines[row].StartsWith('|'); row++)
                {
                    var cell = lines[row].Split('|')[1];
                    if (!KeyCellPattern().IsMatch(cell))
                    {
                        FormatProblems.Add("docs/configuration/" + page + ":" + (row + 1) + ": the first cell of a key table row must hold keys in backticks, found '" + cell.Trim() + "'");
                        continue;
                    }

                    foreach (Match key in InlineCodePattern().Matches(cell))
                    {
                        table.Keys.Add(new KeyRow(key.Value.Trim('`'), row + 1, lines[row]));
                    }
                }

                if (table.Keys.Count == 0)
                {
                    FormatProblems.Add("docs/configuration/" + page + ":" + (i + 1) + ": a key table without keys");
                }

                Tables.Add(table);
                i = row - 1;
            }
        }
    }
}
