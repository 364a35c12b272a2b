using System.Buffers;
using System.Text;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// The app's StartupMessage: protocol version and its parameters (user, database, options,
/// application_name...). The proxy keeps the database and options and logs in as the credential's
/// user, whatever user the app named.
/// </summary>
internal sealed class PostgresStartupMessage
{
    private PostgresStartupMessage(int minorVersion, List<KeyValuePair<string, string>> parameters, List<string> protocolOptions)
    {
        MinorVersion = minorVersion;
        Parameters = parameters;
        ProtocolOptions = protocolOptions;
    }

    public int MinorVersion { get; }

    /// <summary>Parameters in the app's order, without <c>_pq_.</c> protocol options.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Parameters { get; }

    /// <summary><c>_pq_.*</c> protocol extensions the app asked for; the proxy speaks plain 3.0 and declines them.</summary>
    public IReadOnlyList<string> ProtocolOptions { get; }

    public string? this[string name] => Parameters.FirstOrDefault(p => p.Key == name).Value;

    /// <summary>
    /// The database the app asked for; like the server, the user name the app gave when it named
    /// none (the app's view of "my default database").
    /// </summary>
    public string? Database => this["database"] is { Length: > 0 } db ? db : this["user"] is { Length: > 0 } user ? user : null;

    /// <summary>Parses the payload after the length and version words; null with a reason when it is malformed.</summary>
    public static PostgresStartupMessage? TryParse(int version, ReadOnlySequence<byte> payload, out string? error)
    {
        error = null;
        var parameters = new List<KeyValuePair<string, string>>();
        var options = new List<string>();
        var reader = new SequenceReader<byte>(payload);
        while (true)
        {
            if (!reader.TryReadTo(out ReadOnlySequence<byte> name, 0))
            {
                error = "the startup message is not terminated";
                return null;
            }

            if (name.IsEmpty)
            {
                break;
            }

            if (!reader.TryReadTo(out ReadOnlySequence<byte> value, 0))
            {
                error = "a startup parameter has no value";
                return null;
            }

            string key;
            string text;
            try
            {
                key = Strict.GetString(name);
                text = Strict.GetString(value);
            }
            catch (DecoderFallbackException)
            {
                error = "a startup parameter is not valid UTF-8";
                return null;
            }

            if (key.StartsWith("_pq_.", StringComparison.Ordinal))
            {
                options.Add(key);
            }
            else if (parameters.Any(p => p.Key == key))
            {
                error = "startup parameter '" + key + "' appears twice";
                return null;
            }
            else
            {
                parameters.Add(new(key, text));
            }
        }

        if (reader.Remaining != 0)
        {
            error = "the startup message has bytes after its terminator";
            return null;
        }

        return new PostgresStartupMessage(version & 0xFFFF, parameters, options);
    }

    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
