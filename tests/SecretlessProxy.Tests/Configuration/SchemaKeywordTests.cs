using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;

namespace SecretlessProxy.Tests.Configuration;

/// <summary>
/// The schema file is sound draft-07, and each kind of violation reaches the operator as
/// <c>Key: message</c> in the proxy's words, not the evaluator's.
/// </summary>
public sealed class SchemaKeywordTests
{
    private const string NotAKnownKey = "is not a known key (misspelt, or a secret written inline instead of in a file?)";

    [Fact]
    public void The_schema_file_is_valid_draft_07()
    {
        using var schema = JsonDocument.Parse(File.ReadAllText(RepoPaths.Combine("appsettings.schema.json")));

        var results = MetaSchemas.Draft7.Evaluate(schema.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });

        Assert.True(results.IsValid, Describe(results));
    }

    [Fact]
    public void The_schema_file_uses_only_draft_07_keywords()
    {
        // Draft-07 ignores a keyword it does not know, so a misspelt "minLenght" would drop a rule
        // without a sound. Built under draft-07 with unknown keywords refused, it must still build;
        // and the same build refuses such a misspelling, so this test can fail.
        var schema = JsonNode.Parse(File.ReadAllText(RepoPaths.Combine("appsettings.schema.json")))!.AsObject();
        var misspelt = schema.DeepClone().AsObject();
        misspelt["definitions"]!["Admin"]!["properties"]!["TokenFile"]!["minLenght"] = 1;

        BuildStrictDraft07(schema);
        var refused = Assert.Throws<JsonSchemaException>(() => BuildStrictDraft07(misspelt));
        Assert.Contains("minLenght", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"SecretlessProxy\":{\"Admin\":{\"Url\":\"\"}}}", "SecretlessProxy:Admin:Url: must not be empty")]
    [InlineData("{\"SecretlessProxy\":{\"Listeners\":{\"a\":{\"Mode\":\"Route\",\"Url\":\"not a url\"}}}}", "SecretlessProxy:Listeners:a:Url: must be an absolute URL")]
    [InlineData("{\"SecretlessProxy\":{\"Credentials\":{\"c\":{\"Source\":\"File\",\"RefreshAt\":1}}}}", "SecretlessProxy:Credentials:c:RefreshAt: is out of range")]
    [InlineData("{\"SecretlessProxy\":{\"Listeners\":{\"a\":{\"Url\":\"http://127.0.0.1:0\"}}}}", "SecretlessProxy:Listeners:a:Mode: is required")]
    [InlineData("{\"SecretlessProxy\":{\"Unmatched\":\"Never\"}}", "SecretlessProxy:Unmatched: is not one of the allowed values")]
    [InlineData("{\"SecretlessProxy\":{\"Shutdown\":{\"DrainTimeout\":\"30s\"}}}", "SecretlessProxy:Shutdown:DrainTimeout: does not have the expected format")]
    [InlineData("{\"SecretlessProxy\":{\"Admin\":{\"AllowedUids\":[]}}}", "SecretlessProxy:Admin:AllowedUids: needs at least one item")]
    [InlineData("{\"SecretlessProxy\":{\"Limits\":{\"SigningBufferBytes\":1.5}}}", "SecretlessProxy:Limits:SigningBufferBytes: must be an integer")]
    [InlineData("{\"SecretlessProxy\":{\"Unmatchd\":\"Deny\"}}", "SecretlessProxy:Unmatchd: " + NotAKnownKey)]
    [InlineData("{\"SecretlessProxy\":{\"Listeners\":{\"a/b~c\":{\"Mode\":\"Route\",\"Url\":\"http://127.0.0.1:0\",\"Upstrem\":\"x\"}}}}", "SecretlessProxy:Listeners:a/b~c:Upstrem: " + NotAKnownKey)]
    [InlineData("[]", "(root): must be an object")]
    public async Task Each_violation_is_one_error_at_its_key(string json, string expected)
    {
        var validator = await ConfigSchemaValidator.LoadEmbeddedAsync();
        var errors = new List<ConfigError>();

        validator.Validate(json, errors);

        Assert.Contains(expected, errors.Select(e => e.ToString()));
    }

    [Fact]
    public async Task A_value_of_the_wrong_type_is_reported_once_as_a_type_error()
    {
        var validator = await ConfigSchemaValidator.LoadEmbeddedAsync();
        var errors = new List<ConfigError>();

        // 5 is also not one of Mode's allowed values; the type is what to fix.
        validator.Validate("{\"SecretlessProxy\":{\"Listeners\":{\"a\":{\"Mode\":5,\"Url\":\"http://127.0.0.1:0\"}}}}", errors);

        Assert.Equal(["SecretlessProxy:Listeners:a:Mode: must be a string"], errors.Select(e => e.ToString()));
    }

    [Fact]
    public async Task Comments_and_trailing_commas_are_accepted_as_the_configuration_loader_accepts_them()
    {
        var validator = await ConfigSchemaValidator.LoadEmbeddedAsync();
        var errors = new List<ConfigError>();

        validator.Validate("{ // a comment\n \"SecretlessProxy\": { \"Unmatched\": \"Deny\", }, }", errors);

        Assert.Empty(errors);
    }

    private static void BuildStrictDraft07(JsonObject schema)
    {
        // $schema would choose the registered (lenient) draft-07 dialect over the one given here.
        var copy = schema.DeepClone().AsObject();
        copy.Remove("$schema");
        using var document = JsonDocument.Parse(copy.ToJsonString());
        var options = new BuildOptions
        {
            SchemaRegistry = new SchemaRegistry(),
            Dialect = Dialect.Draft07.With([], allowUnknownKeywords: false),
        };

        JsonSchema.Build(document.RootElement.Clone(), options, new Uri("https://secretless-proxy.invalid/strict.json"));
    }

    private static string Describe(EvaluationResults results) =>
        string.Join("\n", (results.Details ?? []).Where(d => d.Errors is { Count: > 0 })
            .SelectMany(d => d.Errors!.Select(e => d.InstanceLocation + " " + e.Key + ": " + e.Value)));
}
