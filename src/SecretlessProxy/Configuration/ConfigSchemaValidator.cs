using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using SecretlessProxy.Core;

namespace SecretlessProxy.Configuration;

/// <summary>
/// Checks a config file against <c>appsettings.schema.json</c> (embedded in the binary, so the
/// schema that validates is the one that shipped). Catches what binding silently ignores: a
/// misspelt key, an inline secret, a wrong type.
/// </summary>
/// <remarks>
/// This evaluates the part of JSON Schema draft-07 that the schema uses (type, properties,
/// additionalProperties, required, enum, pattern, format uri, minimum/maximum and their exclusive
/// forms, minLength, items, minItems, local <c>$ref</c>) with System.Text.Json. NJsonSchema was used
/// first; it reads schemas through Newtonsoft.Json and Namotion.Reflection, which fail at run time
/// under Native AOT, and no AOT-safe validator restores here. A test checks that every keyword the
/// schema file contains is one this class evaluates, so the schema cannot silently outgrow it.
/// </remarks>
public sealed class ConfigSchemaValidator
{
    /// <summary>Keywords evaluated here, plus annotations that need no evaluation.</summary>
    public static readonly IReadOnlySet<string> SupportedKeywords = new HashSet<string>(StringComparer.Ordinal)
    {
        "type", "properties", "additionalProperties", "required", "enum", "pattern", "format", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minLength", "items", "minItems", "$ref",
        "$schema", "title", "description", "definitions",
    };

    private static readonly JsonDocumentOptions ParseOptions = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    private readonly JsonElement _root;
    private readonly Dictionary<string, Regex> _patterns = new(StringComparer.Ordinal);

    private ConfigSchemaValidator(JsonElement root)
    {
        _root = root;
    }

    public static async Task<ConfigSchemaValidator> LoadEmbeddedAsync()
    {
        await using var stream = typeof(ConfigSchemaValidator).Assembly.GetManifestResourceStream("appsettings.schema.json")
            ?? throw new InvalidOperationException("The configuration schema is not embedded in this build.");
        using var document = await JsonDocument.ParseAsync(stream).ConfigureAwait(false);
        return new ConfigSchemaValidator(document.RootElement.Clone());
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
            Check(_root, document.RootElement, [], errors);
        }
    }

    private void Check(JsonElement schema, JsonElement value, List<string> path, List<ConfigError> errors)
    {
        if (schema.ValueKind == JsonValueKind.True)
        {
            return;
        }

        if (schema.ValueKind == JsonValueKind.False)
        {
            errors.Add(new(KeyOf(path), "is not allowed"));
            return;
        }

        if (schema.TryGetProperty("$ref", out var reference))
        {
            Check(Resolve(reference.GetString()!), value, path, errors);
        }

        if (schema.TryGetProperty("type", out var type) && !HasType(value, type.GetString()!))
        {
            errors.Add(new(KeyOf(path), TypeMessage(type.GetString()!)));
            return;
        }

        if (schema.TryGetProperty("enum", out var allowed) && !allowed.EnumerateArray().Any(a => JsonElement.DeepEquals(a, value)))
        {
            errors.Add(new(KeyOf(path), "is not one of the allowed values"));
        }

        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                CheckObject(schema, value, path, errors);
                break;
            case JsonValueKind.Array:
                CheckArray(schema, value, path, errors);
                break;
            case JsonValueKind.String:
                CheckString(schema, value.GetString()!, path, errors);
                break;
            case JsonValueKind.Number:
                CheckNumber(schema, value.GetDouble(), path, errors);
                break;
        }
    }

    private void CheckObject(JsonElement schema, JsonElement value, List<string> path, List<ConfigError> errors)
    {
        schema.TryGetProperty("properties", out var properties);
        if (schema.TryGetProperty("required", out var required))
        {
            foreach (var name in required.EnumerateArray().Select(r => r.GetString()!))
            {
                if (!value.TryGetProperty(name, out _))
                {
                    errors.Add(new(KeyOf([.. path, name]), "is required"));
                }
            }
        }

        foreach (var property in value.EnumerateObject())
        {
            path.Add(property.Name);
            if (properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty(property.Name, out var propertySchema))
            {
                Check(propertySchema, property.Value, path, errors);
            }
            else if (schema.TryGetProperty("additionalProperties", out var additional))
            {
                if (additional.ValueKind == JsonValueKind.False)
                {
                    errors.Add(new(KeyOf(path), "is not a known key (misspelt, or a secret written inline instead of in a file?)"));
                }
                else
                {
                    Check(additional, property.Value, path, errors);
                }
            }

            path.RemoveAt(path.Count - 1);
        }
    }

    private void CheckArray(JsonElement schema, JsonElement value, List<string> path, List<ConfigError> errors)
    {
        if (schema.TryGetProperty("minItems", out var minItems) && value.GetArrayLength() < minItems.GetInt32())
        {
            errors.Add(new(KeyOf(path), "needs at least one item"));
        }

        if (schema.TryGetProperty("items", out var items))
        {
            var index = 0;
            foreach (var item in value.EnumerateArray())
            {
                path.Add(index++.ToString(CultureInfo.InvariantCulture));
                Check(items, item, path, errors);
                path.RemoveAt(path.Count - 1);
            }
        }
    }

    private void CheckString(JsonElement schema, string value, List<string> path, List<ConfigError> errors)
    {
        if (schema.TryGetProperty("minLength", out var minLength) && value.Length < minLength.GetInt32())
        {
            errors.Add(new(KeyOf(path), minLength.GetInt32() == 1 ? "must not be empty" : "is too short"));
        }

        if (schema.TryGetProperty("pattern", out var pattern) && !Pattern(pattern.GetString()!).IsMatch(value))
        {
            errors.Add(new(KeyOf(path), "does not have the expected format"));
        }

        if (schema.TryGetProperty("format", out var format) && format.GetString() == "uri" && !Uri.TryCreate(value, UriKind.Absolute, out _))
        {
            errors.Add(new(KeyOf(path), "must be an absolute URL"));
        }
    }

    private static void CheckNumber(JsonElement schema, double value, List<string> path, List<ConfigError> errors)
    {
        var outOfRange =
            (schema.TryGetProperty("minimum", out var minimum) && value < minimum.GetDouble()) ||
            (schema.TryGetProperty("maximum", out var maximum) && value > maximum.GetDouble()) ||
            (schema.TryGetProperty("exclusiveMinimum", out var exclusiveMinimum) && value <= exclusiveMinimum.GetDouble()) ||
            (schema.TryGetProperty("exclusiveMaximum", out var exclusiveMaximum) && value >= exclusiveMaximum.GetDouble());
        if (outOfRange)
        {
            errors.Add(new(KeyOf(path), "is out of range"));
        }
    }

    private static bool HasType(JsonElement value, string type) => type switch
    {
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "string" => value.ValueKind == JsonValueKind.String,
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && Math.Floor(d) == d,
        "null" => value.ValueKind == JsonValueKind.Null,
        _ => throw new InvalidOperationException("The schema uses type '" + type + "', which this validator does not know."),
    };

    private static string TypeMessage(string type) => type switch
    {
        "string" => "must be a string",
        "integer" => "must be an integer",
        "number" => "must be a number",
        "boolean" => "must be true or false",
        "array" => "must be an array",
        "object" => "must be an object",
        _ => "must be " + type,
    };

    private JsonElement Resolve(string reference)
    {
        // Only local references into the schema's own definitions are used (#/definitions/Name).
        if (!reference.StartsWith("#/", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("The schema references '" + reference + "'; only local references are supported.");
        }

        var target = _root;
        foreach (var segment in reference[2..].Split('/'))
        {
            target = target.GetProperty(segment.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal));
        }

        return target;
    }

    private Regex Pattern(string pattern)
    {
        lock (_patterns)
        {
            if (!_patterns.TryGetValue(pattern, out var regex))
            {
                // ECMAScript semantics, as JSON Schema specifies for patterns.
                regex = new Regex(pattern, RegexOptions.ECMAScript | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
                _patterns[pattern] = regex;
            }

            return regex;
        }
    }

    private static string KeyOf(List<string> path) => path.Count == 0 ? "(root)" : string.Join(':', path);
}
