using SecretlessProxy.Core;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Configuration;

/// <summary>
/// Loads a config file: JSON schema check, then binding (with <c>SecretlessProxy__*</c> environment
/// overrides applied), then semantic validation and compilation into a snapshot.
/// </summary>
internal sealed class ConfigLoader
{
    private readonly TimeProvider _time;
    private readonly HttpMessageInvoker _tokenClient;
    private readonly WorkloadIdentityAccessor _identity;
    private readonly ILoggerFactory _loggerFactory;

    /// <param name="identity">The running proxy's identity, for sources that present it; a fresh one when only validating.</param>
    /// <param name="loggerFactory">Loggers for compiled sources that log on their own (Vault lease renewal and revocation).</param>
    public ConfigLoader(TimeProvider time, HttpMessageInvoker tokenClient, WorkloadIdentityAccessor? identity = null, ILoggerFactory? loggerFactory = null)
    {
        _loggerFactory = loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        _time = time;
        _tokenClient = tokenClient;
        _identity = identity ?? new WorkloadIdentityAccessor();
    }

    public async Task<ConfigLoadResult> LoadAsync(string path, bool includeEnvironment = true, bool checkFiles = true, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var errors = new List<ConfigError>();
        var fullPath = Path.GetFullPath(path);
        var empty = new ConfigurationBuilder().Build();
        string json;
        try
        {
            json = await File.ReadAllTextAsync(fullPath).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            errors.Add(new("(file)", "cannot read '" + fullPath + "': " + ex.GetType().Name));
            return new ConfigLoadResult(null, errors, empty);
        }

        var schema = await ConfigSchemaValidator.LoadEmbeddedAsync().ConfigureAwait(false);
        schema.Validate(json, errors);
        if (errors.Count > 0 && errors.Any(e => e.Key == "(file)"))
        {
            return new ConfigLoadResult(null, errors, empty);
        }

        return Compile(BuildConfiguration(fullPath, includeEnvironment, overrides), Path.GetDirectoryName(fullPath)!, checkFiles, errors);
    }

    /// <summary>Compiles an already-built configuration (tests and the demo use in-memory sources).</summary>
    public ConfigLoadResult Compile(IConfiguration configuration, string baseDirectory, bool checkFiles, List<ConfigError>? errors = null)
    {
        errors ??= [];
        var options = new SecretlessProxyOptions();
        try
        {
            configuration.GetSection(SecretlessProxyOptions.SectionName).Bind(options);
        }
        catch (InvalidOperationException ex)
        {
            // The binder names the key and the value it could not convert; values here are not
            // secrets (secrets live in files), so its message is safe to show.
            errors.Add(new(SecretlessProxyOptions.SectionName, ex.Message));
            return new ConfigLoadResult(null, errors, configuration);
        }

        // "AwsSigV4": {} (infer service and region from the host) binds to nothing: an empty object has
        // no keys. It is there all the same.
        foreach (var (name, policy) in options.Policies)
        {
            var section = configuration.GetSection(SecretlessProxyOptions.SectionName + ":Policies:" + name + ":Inject");
            if (policy.Inject.AwsSigV4 is null && section.GetChildren().Any(c => string.Equals(c.Key, "AwsSigV4", StringComparison.OrdinalIgnoreCase)))
            {
                policy.Inject.AwsSigV4 = new AwsSigV4Options();
            }
        }

        // Schema and semantic checks may both flag one key (a missing Url, say); both messages are
        // kept, since each says something the other does not.
        var snapshot = new SnapshotCompiler(_time, _tokenClient, baseDirectory, checkFiles, _identity, _loggerFactory).Compile(options, configuration.GetSection(SecretlessProxyOptions.SectionName), errors);
        if (snapshot is not null)
        {
            // A credential built on others (an RDS token signed with an STS session's keys) changes when
            // they do: a reload that re-points the keys must not keep a token minted with the old ones.
            var referencesOf = snapshot.Credentials.ToDictionary(c => c.Name, c => c.Source.References.Select(r => r.Name).ToArray(), StringComparer.OrdinalIgnoreCase);
            string Section(string name) => Fingerprint(configuration.GetSection(SecretlessProxyOptions.SectionName + ":Credentials:" + name));
            snapshot = snapshot.WithCredentialFingerprints(name => Section(name) + string.Concat(referencesOf.GetValueOrDefault(name, []).Select(r => "\n->" + r + "\n" + Section(r))));
        }

        return new ConfigLoadResult(errors.Count == 0 ? snapshot : null, errors, configuration);
    }

    /// <summary>Every key and value under a section, in a stable order, keys compared as the binder does (ignoring case).</summary>
    private static string Fingerprint(IConfigurationSection section)
    {
        var prefix = section.Path.Length + 1;
        var pairs = section.AsEnumerable()
            .Where(kv => kv.Value is not null && kv.Key.Length > prefix)
            .Select(kv => kv.Key[prefix..].ToLowerInvariant() + "=" + kv.Value)
            // Who owns a credential does not change its value: a new owner keeps the cached one.
            .Where(pair => !pair.StartsWith("owner:", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);
        return string.Join("\n", pairs);
    }

    private static IConfigurationRoot BuildConfiguration(string fullPath, bool includeEnvironment, IReadOnlyDictionary<string, string?>? overrides)
    {
        var builder = new ConfigurationBuilder().AddJsonFile(fullPath, optional: false, reloadOnChange: false);
        if (includeEnvironment)
        {
            builder.AddEnvironmentVariables();
        }

        if (overrides is not null)
        {
            builder.AddInMemoryCollection(overrides);
        }

        return builder.Build();
    }
}
