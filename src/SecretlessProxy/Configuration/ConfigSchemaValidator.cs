using System.Globalization;
using System.Text.Json;
using Json.Pointer;
using Json.Schema;
using SecretlessProxy.Core;

namespace SecretlessProxy.Configuration;

/// <summary>
/// Checks a config file against <c>appsettings.schema.json</c> (embedded in the binary, so the
/// schema that validates is the one that shipped). Catches what binding silently ignores: a
/// misspelt key, an inline secret, a wrong type.
/// </summary>
/// <remarks>
/// Evaluation is JsonSchema.Net's: a maintained, complete draft-07 implementation on
/// System.Text.Json that publishes under Native AOT without warnings (NJsonSchema reads schemas
/// through Newtonsoft.Json and reflection, which fail at run time under AOT). This class only turns
/// the library's list output into the <c>Key: message</c> errors that <c>validate</c> prints, in
/// the operator's terms rather than the library's: each error's instance location becomes the
/// configuration key, and the failing keyword's value in the schema says what was expected.
/// </remarks>
internal sealed class ConfigSchemaValidator
{
    // Any fixed absolute URI: it only anchors the schema's local $refs (the schema has no $id), and a
    // fixed one keeps messages about the schema the same from run to run.
    private static readonly Uri SchemaUri = new("https://secretless-proxy.invalid/appsettings.schema.json");

    private static readonly JsonDocumentOptions ParseOptions = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    private readonly JsonSchema _schema;
    private readonly JsonElement _root;

    // Draft-07 treats format as an annotation unless the validator is told to assert it; the schema
    // relies on "format": "uri" to reject listener and admin URLs that are not absolute.
    private readonly EvaluationOptions _evaluation = new()
    {
        OutputFormat = OutputFormat.List,
        RequireFormatValidation = true,
        Culture = CultureInfo.InvariantCulture,
    };

    private ConfigSchemaValidator(JsonSchema schema, JsonElement root)
    {
        _schema = schema;
        _root = root;
    }

    public static async Task<ConfigSchemaValidator> LoadEmbeddedAsync()
    {
        await using var stream = typeof(ConfigSchemaValidator).Assembly.GetManifestResourceStream("appsettings.schema.json")
            ?? throw new InvalidOperationException("The configuration schema is not embedded in this build.");
        using var document = await JsonDocument.ParseAsync(stream).ConfigureAwait(false);
        var root = document.RootElement.Clone();

        // A registry of its own: building into the global one would add an entry at every reload.
        var schema = JsonSchema.Build(root, new BuildOptions { SchemaRegistry = new SchemaRegistry() }, SchemaUri);
        return new ConfigSchemaValidator(schema, root);
    }

    public void Validate(string json, List<ConfigError> errors)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, ParseOptions);
        }
        catch (JsonException ex)
        {
            errors.Add(new("(file)", "is not valid JSON: " + ex.Message));
            return;
        }

        using (document)
        {
            var results = _schema.Evaluate(document.RootElement, _evaluation);
            if (results.IsValid)
            {
                return;
            }

            Describe(results, document.RootElement, errors);
            foreach (var detail in results.Details ?? [])
            {
                Describe(detail, document.RootElement, errors);
            }
        }
    }

    /// <summary>Turns one failing schema node's errors into configuration errors at the key it checked.</summary>
    private void Describe(EvaluationResults result, JsonElement instanceRoot, List<ConfigError> errors)
    {
        if (result.Errors is not { Count: > 0 } failed)
        {
            return;
        }

        var path = Segments(result.InstanceLocation);
        var underAdditional = result.EvaluationPath.SegmentCount > 0 && result.EvaluationPath[result.EvaluationPath.SegmentCount - 1] == "additionalProperties";
        var schema = SchemaAt(result.EvaluationPath);

        if (schema.ValueKind == JsonValueKind.False)
        {
            // "additionalProperties": false is where the schema closes an object: the key is not in it.
            errors.Add(new(KeyOf(path), underAdditional ? "is not a known key (misspelt, or a secret written inline instead of in a file?)" : "is not allowed"));
            return;
        }

        // A value of the wrong type fails its other keywords too; the type is what to fix.
        if (failed.ContainsKey("type"))
        {
            errors.Add(new(KeyOf(path), TypeMessage(schema.GetProperty("type"))));
            return;
        }

        var outOfRange = false;
        foreach (var (keyword, message) in failed)
        {
            switch (keyword)
            {
                case "required":
                    var value = result.InstanceLocation.Evaluate(instanceRoot);
                    foreach (var name in schema.GetProperty("required").EnumerateArray().Select(r => r.GetString()!))
                    {
                        if (value is not { ValueKind: JsonValueKind.Object } instance || !instance.TryGetProperty(name, out _))
                        {
                            errors.Add(new(KeyOf([.. path, name]), "is required"));
                        }
                    }

                    break;
                case "enum":
                    errors.Add(new(KeyOf(path), "is not one of the allowed values"));
                    break;
                case "pattern":
                    errors.Add(new(KeyOf(path), "does not have the expected format"));
                    break;
                case "format":
                    errors.Add(new(KeyOf(path), schema.GetProperty("format").GetString() == "uri" ? "must be an absolute URL" : "does not have the expected format"));
                    break;
                case "minLength":
                    errors.Add(new(KeyOf(path), schema.GetProperty("minLength").GetInt32() == 1 ? "must not be empty" : "is too short"));
                    break;
                case "minItems":
                    var minItems = schema.GetProperty("minItems").GetInt32();
                    errors.Add(new(KeyOf(path), minItems == 1 ? "needs at least one item" : "needs at least " + minItems.ToString(CultureInfo.InvariantCulture) + " items"));
                    break;
                case "minimum" or "maximum" or "exclusiveMinimum" or "exclusiveMaximum":
                    outOfRange = true;
                    break;
                case "properties" or "additionalProperties" or "items" or "$ref":
                    // Applicators: the subschema that failed reports its own, more precise error.
                    break;
                default:
                    // A keyword the schema may use one day: the library's own words, still at the key.
                    errors.Add(new(KeyOf(path), message));
                    break;
            }
        }

        if (outOfRange)
        {
            errors.Add(new(KeyOf(path), "is out of range"));
        }
    }

    /// <summary>The schema node that produced a result, found by walking its evaluation path.</summary>
    /// <remarks>
    /// The evaluation path is the way the evaluator went (through each <c>$ref</c>), so it names the
    /// node exactly. The result's absolute schema location would be shorter, but for subschemas of
    /// <c>items</c> and <c>additionalProperties</c> the library appends the enclosing property's name
    /// to it, which points nowhere.
    /// </remarks>
    private JsonElement SchemaAt(JsonPointer evaluationPath)
    {
        var schema = _root;
        foreach (var segment in Segments(evaluationPath))
        {
            if (segment == "$ref" && schema.TryGetProperty("$ref", out var reference) && reference.ValueKind == JsonValueKind.String)
            {
                schema = Resolve(reference.GetString()!);
            }
            else if (schema.ValueKind == JsonValueKind.Array)
            {
                schema = schema[int.Parse(segment, CultureInfo.InvariantCulture)];
            }
            else if (!schema.TryGetProperty(segment, out schema))
            {
                throw new InvalidOperationException("The schema evaluator reported a path the schema does not have: " + evaluationPath);
            }
        }

        return schema;
    }

    private JsonElement Resolve(string reference)
    {
        // The schema refers only into itself (#/definitions/Name); the pointer is URI-fragment encoded.
        if (!reference.StartsWith('#'))
        {
            throw new InvalidOperationException("The schema references '" + reference + "'; only references within it are expected.");
        }

        return JsonPointer.Parse(Uri.UnescapeDataString(reference[1..])).Evaluate(_root)
            ?? throw new InvalidOperationException("The schema references '" + reference + "', which it does not contain.");
    }

    private static List<string> Segments(JsonPointer pointer)
    {
        var segments = new List<string>(pointer.SegmentCount);
        for (var i = 0; i < pointer.SegmentCount; i++)
        {
            // Segments come encoded (RFC 6901): a key containing '/' or '~' is spelt ~1 and ~0.
            segments.Add(pointer[i].ToString().Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal));
        }

        return segments;
    }

    private static string TypeMessage(JsonElement type) => type.ValueKind == JsonValueKind.Array
        ? "must be " + string.Join(" or ", type.EnumerateArray().Select(t => TypeName(t.GetString()!)))
        : "must be " + TypeName(type.GetString()!);

    private static string TypeName(string type) => type switch
    {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "true or false",
        "array" => "an array",
        "object" => "an object",
        _ => type,
    };

    private static string KeyOf(List<string> path) => path.Count == 0 ? "(root)" : string.Join(':', path);
}
