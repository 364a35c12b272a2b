using System.Text.Json;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>The schema must use only keywords the validator evaluates, or a rule would be silently ignored.</summary>
public sealed class SchemaKeywordTests
{
    [Fact]
    public void Every_keyword_in_the_schema_file_is_evaluated_by_the_validator()
    {
        var root = FindRepositoryRoot();
        using var schema = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "appsettings.schema.json")));
        var keywords = new HashSet<string>();
        Collect(schema.RootElement, keywords);

        Assert.NotEmpty(keywords);
        Assert.Empty(keywords.Except(ConfigSchemaValidator.SupportedKeywords));
    }

    [Theory]
    [InlineData("{\"SecretlessProxy\":{\"Admin\":{\"Url\":\"\"}}}", "SecretlessProxy:Admin:Url")]
    [InlineData("{\"SecretlessProxy\":{\"Listeners\":{\"a\":{\"Mode\":\"Route\",\"Url\":\"not a url\"}}}}", "SecretlessProxy:Listeners:a:Url")]
    [InlineData("{\"SecretlessProxy\":{\"Credentials\":{\"c\":{\"Source\":\"File\",\"RefreshAt\":1}}}}", "SecretlessProxy:Credentials:c:RefreshAt")]
    public async Task Violations_are_reported_at_their_key(string json, string key)
    {
        var validator = await ConfigSchemaValidator.LoadEmbeddedAsync();
        var errors = new List<ConfigError>();

        validator.Validate(json, errors);

        Assert.Contains(errors, e => e.Key == key);
    }

    [Fact]
    public async Task Comments_and_trailing_commas_are_accepted_as_the_configuration_loader_accepts_them()
    {
        var validator = await ConfigSchemaValidator.LoadEmbeddedAsync();
        var errors = new List<ConfigError>();

        validator.Validate("{ // a comment\n \"SecretlessProxy\": { \"Unmatched\": \"Deny\", }, }", errors);

        Assert.Empty(errors);
    }

    private static void Collect(JsonElement schema, HashSet<string> keywords)
    {
        if (schema.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        foreach (var property in schema.EnumerateObject())
        {
            keywords.Add(property.Name);
            switch (property.Name)
            {
                case "properties" or "definitions":
                    foreach (var child in property.Value.EnumerateObject())
                    {
                        Collect(child.Value, keywords);
                    }

                    break;
                case "items" or "additionalProperties":
                    Collect(property.Value, keywords);
                    break;
            }
        }
    }

    private static string FindRepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "SecretlessProxy.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("repository root not found");
    }
}
