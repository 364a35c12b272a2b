using NJsonSchema;
using NJsonSchema.Validation;

namespace SecretlessProxy.Configuration;

/// <summary>
/// Checks a config file against <c>appsettings.schema.json</c> (embedded in the binary, so the
/// schema that validates is the one that shipped). Catches what binding silently ignores: a
/// misspelt key, an inline secret, a wrong type.
/// </summary>
public sealed class ConfigSchemaValidator
{
    private readonly JsonSchema _schema;

    private ConfigSchemaValidator(JsonSchema schema)
    {
        _schema = schema;
    }

    public static async Task<ConfigSchemaValidator> LoadEmbeddedAsync()
    {
        await using var stream = typeof(ConfigSchemaValidator).Assembly.GetManifestResourceStream("appsettings.schema.json")
            ?? throw new InvalidOperationException("The configuration schema is not embedded in this build.");
        using var reader = new StreamReader(stream);
        return new ConfigSchemaValidator(await JsonSchema.FromJsonAsync(await reader.ReadToEndAsync().ConfigureAwait(false)).ConfigureAwait(false));
    }

    public void Validate(string json, List<ConfigError> errors)
    {
        ICollection<ValidationError> found;
        try
        {
            found = _schema.Validate(json);
        }
        catch (Newtonsoft.Json.JsonException ex)
        {
            errors.Add(new("(file)", "is not valid JSON: " + ex.Message));
            return;
        }

        foreach (var error in Flatten(found))
        {
            errors.Add(new(KeyOf(error), Describe(error)));
        }
    }

    // NJsonSchema reports a bad entry of a map (additionalProperties) as one generic error whose
    // real causes sit in child errors; operators need the causes.
    private static IEnumerable<ValidationError> Flatten(IEnumerable<ValidationError> errors)
    {
        foreach (var error in errors)
        {
            if (error is ChildSchemaValidationError child && child.Errors.Count > 0)
            {
                foreach (var nested in Flatten(child.Errors.Values.SelectMany(e => e)))
                {
                    yield return nested;
                }
            }
            else
            {
                yield return error;
            }
        }
    }

    /// <summary>
    /// Turns NJsonSchema's path (<c>#/SecretlessProxy.Listeners['payments.v1'].Upstrem</c>) into the
    /// configuration key operators use (<c>SecretlessProxy:Listeners:payments.v1:Upstrem</c>). Names may
    /// contain dots, so the path is split into segments rather than having characters replaced.
    /// </summary>
    internal static string KeyOf(ValidationError error)
    {
        var path = error.Path ?? string.Empty;
        path = path.StartsWith("#/", StringComparison.Ordinal) ? path[2..] : path.TrimStart('#');
        var segments = new List<string>();
        var i = 0;
        while (i < path.Length)
        {
            if (path[i] == '.')
            {
                i++;
            }
            else if (path[i] == '[')
            {
                var quoted = i + 1 < path.Length && path[i + 1] == '\'';
                var close = quoted ? path.IndexOf("']", i + 2, StringComparison.Ordinal) : path.IndexOf(']', i + 1);
                if (close < 0)
                {
                    segments.Add(path[(i + 1)..]);
                    break;
                }

                segments.Add(quoted ? path[(i + 2)..close] : path[(i + 1)..close]);
                i = close + (quoted ? 2 : 1);
            }
            else
            {
                var next = path.IndexOfAny(['.', '['], i);
                segments.Add(next < 0 ? path[i..] : path[i..next]);
                i = next < 0 ? path.Length : next;
            }
        }

        if (error.Kind is ValidationErrorKind.NoAdditionalPropertiesAllowed or ValidationErrorKind.PropertyRequired && error.Property is { } property && (segments.Count == 0 || segments[^1] != property))
        {
            segments.Add(property);
        }

        return segments.Count == 0 ? "(root)" : string.Join(':', segments);
    }

    private static string Describe(ValidationError error) => error.Kind switch
    {
        ValidationErrorKind.NoAdditionalPropertiesAllowed => "is not a known key (misspelt, or a secret written inline instead of in a file?)",
        ValidationErrorKind.PropertyRequired => "is required",
        ValidationErrorKind.NotInEnumeration => "is not one of the allowed values",
        ValidationErrorKind.StringExpected => "must be a string",
        ValidationErrorKind.IntegerExpected => "must be an integer",
        ValidationErrorKind.NumberExpected => "must be a number",
        ValidationErrorKind.BooleanExpected => "must be true or false",
        ValidationErrorKind.ArrayExpected => "must be an array",
        ValidationErrorKind.ObjectExpected => "must be an object",
        ValidationErrorKind.PatternMismatch => "does not have the expected format",
        ValidationErrorKind.UriExpected => "must be an absolute URL",
        ValidationErrorKind.TooFewItems => "needs at least one item",
        ValidationErrorKind.NumberTooSmall or ValidationErrorKind.NumberTooBig => "is out of range",
        _ => "is invalid (" + error.Kind + ")",
    };
}
