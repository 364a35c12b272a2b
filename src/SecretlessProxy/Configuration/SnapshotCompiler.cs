using System.Net;
using SecretlessProxy.Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Identity;
using SecretlessProxy.Identity.Spiffe;
using SecretlessProxy.Injection;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Configuration;

/// <summary>
/// Validates bound options and compiles them into an immutable <see cref="ProxySnapshot"/>. Every
/// problem is collected with its key path, so one run of <c>validate</c> shows them all.
/// </summary>
internal sealed partial class SnapshotCompiler
{
    private const string Root = SecretlessProxyOptions.SectionName;

    /// <summary>A million leaves is about 40 GB: beyond any pod, and beyond any bound worth having.</summary>
    private const int MaxLeafCertificatesLimit = 1_000_000;

    // Headers the HTTP stack or the connection owns: injecting into them would corrupt framing or routing.
    private static readonly HashSet<string> ForbiddenHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer",
        "Proxy-Connection", "Expect",
    };

    private readonly TimeProvider _time;
    private readonly HttpMessageInvoker _tokenClient;
    private readonly string _baseDirectory;
    private readonly bool _checkFiles;
    private readonly WorkloadIdentityAccessor _identity;
    private readonly Microsoft.Extensions.Logging.ILoggerFactory _loggerFactory;
    private readonly CredentialSourceRegistry _sources;
    private readonly ConfigFiles _files;

    // Filled while one Compile runs (RequireSecretFile), handed to the snapshot it returns.
    private readonly List<SecretFile> _secretFiles = [];

    // What each credential of one Compile yields, by name, for the policies and listeners that use it.
    private readonly Dictionary<string, DeclaredCredential> _declared = new(StringComparer.OrdinalIgnoreCase);

    /// <param name="baseDirectory">Relative file paths are resolved against it (the config file's folder).</param>
    /// <param name="checkFiles">Whether referenced secret files must exist now.</param>
    public SnapshotCompiler(TimeProvider time, HttpMessageInvoker tokenClient, string baseDirectory, bool checkFiles = true, WorkloadIdentityAccessor? identity = null, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null)
        : this(time, tokenClient, baseDirectory, checkFiles, identity, loggerFactory, CredentialSourceRegistry.Default)
    {
    }

    /// <param name="sources">The credential source kinds a <c>Source</c> value may name.</param>
    internal SnapshotCompiler(TimeProvider time, HttpMessageInvoker tokenClient, string baseDirectory, bool checkFiles, WorkloadIdentityAccessor? identity, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory, CredentialSourceRegistry sources)
    {
        _sources = sources;
        _files = new ConfigFiles(baseDirectory, checkFiles, _secretFiles);
        _loggerFactory = loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        _identity = identity ?? new WorkloadIdentityAccessor();
        _time = time;
        _tokenClient = tokenClient;
        _baseDirectory = baseDirectory;
        _checkFiles = checkFiles;
    }

    /// <param name="options">The <c>SecretlessProxy</c> section, bound.</param>
    /// <param name="section">The same section unbound: each credential's source binds its own keys from it.</param>
    public ProxySnapshot? Compile(SecretlessProxyOptions options, IConfiguration section, List<ConfigError> errors)
    {
        var start = errors.Count;
        _issuerEndpoints.Clear();
        _secretFiles.Clear();
        _declared.Clear();
        if (BindCredentialSources(options, section, errors) is not { } bound)
        {
            return null;
        }

        var unmatched = ParseUnmatched(options.Unmatched, Root + ":Unmatched", errors) ?? UnmatchedBehavior.Deny;
        var admin = CompileAdmin(options.Admin, errors);

        var credentialOptions = new Dictionary<string, CredentialOptions>(options.Credentials, StringComparer.OrdinalIgnoreCase);
        var credentials = new List<CredentialDefinition>();
        var references = new CredentialReferences(name => _declared.TryGetValue(name, out var declared) ? declared.Yields : null);
        foreach (var (name, credential) in options.Credentials)
        {
            var compiled = CompileCredential(name, credential, bound.GetValueOrDefault(name), options.Identity is not null, references, errors);
            var owner = CompileOwner(name, credential.Owner, options.RequireOwners == true, errors);
            if (compiled is not null)
            {
                references.Compiled(name, compiled.Source);
                credentials.Add(compiled with { Owner = owner });
            }
        }

        references.CheckCycles(errors);

        var identity = CompileIdentity(options.Identity, errors);
        var labels = new Dictionary<string, string>(options.Labels, StringComparer.Ordinal);
        var sourceKinds = credentials.ToDictionary(c => c.Name, c => c.Source.Kind, StringComparer.OrdinalIgnoreCase);
        var policies = new List<CompiledPolicy>();
        foreach (var (name, policy) in options.Policies)
        {
            var conditions = CompileConditions(Root + ":Policies:" + name, policy, labels, options.Identity is not null, identity?.Verifies ?? options.Identity is { JwksUrl: not null } or { Issuer: not null }, errors);
            var compiled = CompilePolicy(name, policy, credentialOptions, sourceKinds, conditions, _time, errors);
            if (compiled is not null)
            {
                policies.Add(compiled);
            }
        }

        CheckAmbiguousPolicies(policies, errors);

        // Listeners last: a listener that records query strings redacts every injected parameter.
        var injectedQueryParameters = policies.Select(p => p.Injection).OfType<QueryInjector>().Select(q => q.Parameter).ToArray();
        var listeners = new Dictionary<string, ListenerDefinition>(StringComparer.OrdinalIgnoreCase);
        if (options.Listeners.Count == 0)
        {
            errors.Add(new(Root + ":Listeners", "at least one listener is required"));
        }

        foreach (var (name, listener) in options.Listeners)
        {
            var compiled = CompileListener(name, listener, section.GetSection("Listeners:" + name), unmatched, injectedQueryParameters, credentialOptions, options.LocalCa is not null, errors);
            if (compiled is not null)
            {
                listeners[name] = compiled;
            }
        }

        CheckPortConflicts(admin, listeners.Values, errors);

        var localCa = CompileLocalCa(options.LocalCa, LocalCaNeededBy(listeners.Values), errors);

        var trustedCaFile = options.Upstreams.TrustedCaFile is null ? null : RequireFile(options.Upstreams.TrustedCaFile, Root + ":Upstreams:TrustedCaFile", errors);
        var spiffeUpstreams = CompileSpiffeTrust(options.Upstreams.SpiffeTrust, errors);
        var audit = CompileAudit(options.Audit, errors);
        var drainTimeout = Positive(options.Shutdown.DrainTimeout, ShutdownOptions.DefaultDrainTimeout, Root + ":Shutdown:DrainTimeout", errors);
        var signingBufferBytes = options.Limits.SigningBufferBytes ?? LimitsOptions.DefaultSigningBufferBytes;
        if (signingBufferBytes < 1)
        {
            errors.Add(new(Root + ":Limits:SigningBufferBytes", "must be at least 1 (bytes of request bodies held at once for SigV4 signing)"));
        }

        if (errors.Count > start || admin is null)
        {
            return null;
        }

        return new ProxySnapshot(admin, listeners, credentials, new PolicySet(policies.OrderBy(p => p.Name, StringComparer.Ordinal).ToArray()), localCa, trustedCaFile, audit, identity, labels, drainTimeout, signingBufferBytes, [.. _issuerEndpoints], _secretFiles.ToArray())
        {
            SpiffeUpstreams = spiffeUpstreams,
        };
    }

    private AuditSettings CompileAudit(AuditOptions audit, List<ConfigError> errors)
    {
        var key = Root + ":Audit";
        var maxBytes = audit.MaxFileBytes ?? AuditSettings.Default.MaxFileBytes;
        if (maxBytes < 1024)
        {
            errors.Add(new(key + ":MaxFileBytes", "must be at least 1024"));
        }

        switch (audit.Sink?.ToLowerInvariant())
        {
            case null or "none":
                return AuditSettings.Default;
            case "stdout":
                return new AuditSettings(AuditSink.Stdout, null, maxBytes);
            case "file":
                if (string.IsNullOrWhiteSpace(audit.Path))
                {
                    errors.Add(new(key + ":Path", "is required for the File sink"));
                    return AuditSettings.Default;
                }

                return new AuditSettings(AuditSink.File, Path.GetFullPath(Path.Combine(_baseDirectory, audit.Path)), maxBytes);
            default:
                errors.Add(new(key + ":Sink", "'" + audit.Sink + "' is not an audit sink; expected None, Stdout or File"));
                return AuditSettings.Default;
        }
    }

    private LocalCaSettings? CompileLocalCa(LocalCaOptions? options, string? neededBy, List<ConfigError> errors)
    {
        var key = Root + ":LocalCa";
        if (options is null)
        {
            if (neededBy is not null)
            {
                errors.Add(new(key, "is required by " + neededBy + ": give Directory, or CertFile and KeyFile"));
            }

            return null;
        }

        var lifetime = Positive(options.LeafLifetime, TimeSpan.FromHours(24), key + ":LeafLifetime", errors);
        var maxLeaves = options.MaxLeafCertificates ?? Certificates.LeafCertificateCache.DefaultMaxCertificates;
        if (maxLeaves is < 1 or > MaxLeafCertificatesLimit)
        {
            errors.Add(new(key + ":MaxLeafCertificates", maxLeaves + " is not between 1 and " + MaxLeafCertificatesLimit + " (each leaf holds about 40 KB)"));
        }
        if (options.Directory is not null)
        {
            if (options.CertFile is not null || options.KeyFile is not null)
            {
                errors.Add(new(key, "give Directory, or CertFile and KeyFile, not both"));
                return null;
            }

            var directory = Path.GetFullPath(Path.Combine(_baseDirectory, options.Directory));
            // The key is created on first start (mode 0600); an existing one is checked like any secret.
            _secretFiles.Add(new SecretFile(key + ":Directory", Path.Combine(directory, Certificates.LocalCertificateAuthority.KeyFileName)));
            return new LocalCaSettings(directory, null, null, lifetime, maxLeaves);
        }

        if (options.CertFile is null || options.KeyFile is null)
        {
            errors.Add(new(key, "give Directory, or both CertFile and KeyFile"));
            return null;
        }

        return new LocalCaSettings(null, RequireFile(options.CertFile, key + ":CertFile", errors), RequireSecretFile(options.KeyFile, key + ":KeyFile", errors), lifetime, maxLeaves);
    }

    private static void CheckPortConflicts(AdminSettings? admin, IEnumerable<ListenerDefinition> listeners, List<ConfigError> errors)
    {
        var seen = new Dictionary<int, string>();
        if (admin?.EndPoint is IPEndPoint { Port: > 0 } adminEndPoint)
        {
            seen[adminEndPoint.Port] = Root + ":Admin:Url";
        }

        if (admin?.ProbeEndPoint is { Port: > 0 } probe)
        {
            seen.TryAdd(probe.Port, Root + ":Admin:ProbeUrl");
        }

        foreach (var listener in listeners)
        {
            if (listener.BindEndPoint is not IPEndPoint { Port: var port } || port == 0)
            {
                continue;
            }

            if (seen.TryGetValue(port, out var other))
            {
                errors.Add(new(Root + ":Listeners:" + listener.Name + ":Url", "port " + port + " is already used by " + other));
            }
            else
            {
                seen[port] = Root + ":Listeners:" + listener.Name + ":Url";
            }
        }
    }

    /// <summary>
    /// Has each credential's source kind bind its own keys, and records what each credential yields
    /// (<see cref="_declared"/>). Null when a value does not convert, reported as the binder of the
    /// whole section reports it (<see cref="ConfigLoader.Compile"/>): nothing else is checked then.
    /// </summary>
    private Dictionary<string, BoundCredentialSource>? BindCredentialSources(SecretlessProxyOptions options, IConfiguration section, List<ConfigError> errors)
    {
        var bound = new Dictionary<string, BoundCredentialSource>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, credential) in options.Credentials)
        {
            var hasUsername = credential.Username is not null || credential.UsernameFile is not null;
            try
            {
                if (_sources.Find(credential.Source)?.Bind(section.GetSection("Credentials:" + name)) is { } source)
                {
                    bound[name] = source;
                    _declared[name] = new DeclaredCredential(source.Kind.Name, source.Yields(hasUsername)) { Audience = source.Audience };
                    continue;
                }
            }
            catch (InvalidOperationException ex)
            {
                // The binder names the key and the value it could not convert; values here are not secrets.
                errors.Add(new(Root, ex.Message));
                return null;
            }

            // A source no kind answers to is reported with the credential; meanwhile it is taken to
            // yield a value, so that what its policies need is still checked.
            _declared[name] = new DeclaredCredential(credential.Source ?? string.Empty, hasUsername ? CredentialShape.Token | CredentialShape.UsernamePassword : CredentialShape.Token);
        }

        return bound;
    }

    /// <summary>The keys every credential has here; the rest is its source kind's (<see cref="BoundCredentialSource.Compile"/>).</summary>
    private CredentialDefinition? CompileCredential(string name, CredentialOptions c, BoundCredentialSource? bound, bool identityConfigured, CredentialReferences references, List<ConfigError> errors)
    {
        var key = Root + ":Credentials:" + name;
        var start = errors.Count;

        if (c.Username is not null && c.UsernameFile is not null)
        {
            errors.Add(new(key + ":UsernameFile", "give Username or UsernameFile, not both"));
        }

        var usernameFile = c.UsernameFile is null ? null : RequireFile(c.UsernameFile, key + ":UsernameFile", errors);
        var refreshAt = c.RefreshAt ?? 0.8;
        if (refreshAt is <= 0 or >= 1 || double.IsNaN(refreshAt))
        {
            errors.Add(new(key + ":RefreshAt", "must be a fraction of the lifetime between 0 and 1 (exclusive)"));
        }

        var expirySkew = NonNegative(c.ExpirySkew, TimeSpan.FromSeconds(5), key + ":ExpirySkew", errors);
        var maxBackoff = Positive(c.MaxBackoff, TimeSpan.FromSeconds(30), key + ":MaxBackoff", errors);
        var refreshJitter = CompileRefreshJitter(c.RefreshJitter, refreshAt, key, errors);
        var prefetchWithin = c.PrefetchWithin is null ? (TimeSpan?)null : Positive(c.PrefetchWithin, TimeSpan.Zero, key + ":PrefetchWithin", errors);

        ICredentialSource? source = null;
        if (bound is not null)
        {
            source = bound.Compile(new CredentialSourceContext
            {
                Key = key,
                Source = c.Source!,
                Username = c.Username,
                UsernameFile = usernameFile,
                IdentityConfigured = identityConfigured,
                Errors = errors,
                Time = _time,
                TokenClient = _tokenClient,
                Identity = _identity,
                LoggerFactory = _loggerFactory,
                Files = _files,
                IssuerEndpoints = _issuerEndpoints,
                References = references,
            });
        }
        else if (c.Source is null)
        {
            errors.Add(new(key + ":Source", "is required (" + _sources.Expected + ")"));
        }
        else
        {
            errors.Add(new(key + ":Source", "'" + c.Source + "' is not a credential source; expected " + _sources.Expected));
        }

        return errors.Count == start && source is not null
            ? new CredentialDefinition(name, source, refreshAt, expirySkew, maxBackoff)
            {
                RefreshJitter = refreshJitter,
                SpreadFirstRefresh = c.SpreadFirstRefresh ?? true,
                PrefetchWithin = prefetchWithin,
            }
            : null;
    }

    /// <summary>
    /// The refresh window must stay inside the lifetime. The default, 0.1, shrinks to half the distance
    /// to 0 or 1 for a RefreshAt near either end, so a configuration that sets only RefreshAt stays valid.
    /// </summary>
    private static double CompileRefreshJitter(double? configured, double refreshAt, string key, List<ConfigError> errors)
    {
        if (refreshAt is <= 0 or >= 1 || double.IsNaN(refreshAt))
        {
            // RefreshAt is reported already; a window around it means nothing.
            return 0;
        }

        if (configured is not { } jitter)
        {
            return Math.Min(0.1, Math.Min(refreshAt, 1 - refreshAt) / 2);
        }

        if (double.IsNaN(jitter) || jitter < 0 || refreshAt - jitter <= 0 || refreshAt + jitter >= 1)
        {
            errors.Add(new(key + ":RefreshJitter", "must be at least 0 and keep RefreshAt ± RefreshJitter between 0 and 1 (exclusive); RefreshAt is " + refreshAt.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            return 0;
        }

        return jitter;
    }

    /// <summary>
    /// A credential's <c>Owner</c>, blanks dropped. Under <c>RequireOwners</c> a credential must name a
    /// business or technical owner: an inventory entry nobody answers for is one nobody rotates.
    /// </summary>
    private static CredentialOwner? CompileOwner(string name, CredentialOwnerOptions? o, bool required, List<ConfigError> errors)
    {
        static string? Value(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
        var owner = o is null ? null : new CredentialOwner(Value(o.Business), Value(o.Technical), Value(o.Contact));
        if (required && owner is not { Business: not null } and not { Technical: not null })
        {
            errors.Add(new(Root + ":Credentials:" + name + ":Owner", "is required (RequireOwners is true): give Business or Technical, and Contact"));
        }

        return owner is { Business: null, Technical: null, Contact: null } ? null : owner;
    }

    private CompiledPolicy? CompilePolicy(string name, PolicyOptions p, Dictionary<string, CredentialOptions> credentials, Dictionary<string, string> sourceKinds, PolicyConditions? conditions, TimeProvider time, List<ConfigError> errors)
    {
        var key = Root + ":Policies:" + name;
        var start = errors.Count;

        var hosts = new List<HostPattern>();
        if (p.Match.Hosts is not { Length: > 0 })
        {
            errors.Add(new(key + ":Match:Hosts", "at least one host is required (an exact name or *.example.com)"));
        }
        else
        {
            for (var i = 0; i < p.Match.Hosts.Length; i++)
            {
                if (HostPattern.TryParse(p.Match.Hosts[i], out var pattern))
                {
                    hosts.Add(pattern!);
                }
                else
                {
                    errors.Add(new(key + ":Match:Hosts:" + i, "'" + p.Match.Hosts[i] + "' is not a host name or *.suffix wildcard"));
                }
            }
        }

        int[]? ports = null;
        if (p.Match.Ports is { Length: > 0 })
        {
            ports = p.Match.Ports;
            for (var i = 0; i < ports.Length; i++)
            {
                if (ports[i] is < 1 or > 65535)
                {
                    errors.Add(new(key + ":Match:Ports:" + i, ports[i] + " is not a TCP port"));
                }
            }
        }

        string[]? methods = null;
        if (p.Match.Methods is { Length: > 0 })
        {
            methods = new string[p.Match.Methods.Length];
            for (var i = 0; i < methods.Length; i++)
            {
                var m = p.Match.Methods[i];
                if (string.IsNullOrEmpty(m) || !m.All(char.IsAsciiLetter))
                {
                    errors.Add(new(key + ":Match:Methods:" + i, "'" + m + "' is not an HTTP method"));
                }

                methods[i] = (m ?? string.Empty).ToUpperInvariant();
            }
        }

        var prefix = p.Match.PathPrefix ?? string.Empty;
        if (prefix.Length > 0 && prefix[0] != '/')
        {
            errors.Add(new(key + ":Match:PathPrefix", "must start with '/'"));
        }
        else if (prefix.Length > 0 && Forwarding.RequestPathInspector.Inspect(prefix).Problem is not (Forwarding.RequestTargetProblem.None or Forwarding.RequestTargetProblem.EncodedSlash) and var prefixProblem)
        {
            // The prefix is compared with decoded request paths, which never hold these.
            errors.Add(new(key + ":Match:PathPrefix", "is ambiguous: " + Forwarding.RequestPathInspector.Describe(prefixProblem)));
        }

        string[]? schemes = null;
        if (p.Match.Schemes is { Length: > 0 })
        {
            schemes = new string[p.Match.Schemes.Length];
            for (var i = 0; i < schemes.Length; i++)
            {
                schemes[i] = (p.Match.Schemes[i] ?? string.Empty).ToLowerInvariant();
                if (schemes[i] is not ("http" or "https"))
                {
                    errors.Add(new(key + ":Match:Schemes:" + i, "'" + p.Match.Schemes[i] + "' is not http or https"));
                }
            }

            if (p.Inject.DatabaseLogin == true)
            {
                errors.Add(new(key + ":Match:Schemes", "does not apply to a DatabaseLogin policy (it matches database connections, not HTTP requests)"));
            }
        }

        if (p.PassRoutingHeaders is { Length: > 0 })
        {
            for (var i = 0; i < p.PassRoutingHeaders.Length; i++)
            {
                if (!Forwarding.RoutingOverrideHeaders.Names.Contains(p.PassRoutingHeaders[i] ?? string.Empty))
                {
                    errors.Add(new(key + ":PassRoutingHeaders:" + i, "'" + p.PassRoutingHeaders[i] + "' is not a routing-override header the proxy removes; other headers pass anyway"));
                }
            }
        }

        CredentialOptions? credential = null;
        if (p.Inject.ClientCertificate is not null)
        {
            // Checked with the certificate (SnapshotCompiler.ClientCertificate.cs).
        }
        else if (p.Inject.DatabaseLogin == true && p.Credential is null)
        {
            // The Postgres listener names its login credential; this policy only authorizes the connection.
        }
        else if (string.IsNullOrWhiteSpace(p.Credential))
        {
            errors.Add(new(key + ":Credential", "is required: the name of an entry under Credentials"));
        }
        else if (!credentials.TryGetValue(p.Credential, out credential))
        {
            errors.Add(new(key + ":Credential", "names unknown credential '" + p.Credential + "'"));
        }

        var observe = false;
        switch (p.Mode?.Trim().ToLowerInvariant())
        {
            case null or "enforce":
                break;
            case "observe":
                observe = true;
                break;
            default:
                errors.Add(new(key + ":Mode", "'" + p.Mode + "' is not a policy mode; expected Enforce or Observe"));
                break;
        }

        var injection = p.Inject.ClientCertificate is not null
            ? CompileClientCertificate(key, p, errors)
            : CompileInjection(key + ":Inject", p.Inject, credential is null ? null : _declared[p.Credential!], p.Match.Hosts, time, errors);
        if (errors.Count > start || conditions is null)
        {
            return null;
        }

        if (injection is ClientCertificateInjector certificate)
        {
            return certificate.CredentialName is { } certificateCredential
                ? new CompiledPolicy(name, hosts, ports, methods, prefix, certificateCredential, sourceKinds.GetValueOrDefault(certificateCredential, "unknown"), certificate, conditions, schemes, p.Match.AllowEncodedSlashes == true, p.PassRoutingHeaders, observe)
                : new CompiledPolicy(name, hosts, ports, methods, prefix, p.Inject.ClientCertificate!.CertFile!, ClientCertificateSource, certificate, conditions, schemes, p.Match.AllowEncodedSlashes == true, p.PassRoutingHeaders, observe);
        }

        // A credential that did not compile leaves the snapshot invalid; its kind is never read then.
        return new CompiledPolicy(name, hosts, ports, methods, prefix, p.Credential ?? string.Empty, p.Credential is null ? string.Empty : sourceKinds.GetValueOrDefault(p.Credential, "unknown"), injection!, conditions, schemes, p.Match.AllowEncodedSlashes == true, p.PassRoutingHeaders, observe);
    }

    /// <param name="credential">What the policy's credential yields; null when it names none (or an unknown one, already reported).</param>
    private InjectionRule? CompileInjection(string key, InjectOptions inject, DeclaredCredential? credential, IReadOnlyList<string>? matchHosts, TimeProvider time, List<ConfigError> errors)
    {
        var kinds = (inject.Header is not null ? 1 : 0) + (inject.Basic == true ? 1 : 0) + (inject.Query is not null ? 1 : 0) + (inject.AwsSigV4 is not null ? 1 : 0) + (inject.DatabaseLogin == true ? 1 : 0);
        if (kinds != 1)
        {
            errors.Add(new(key, kinds == 0 ? "say how to inject: Header with Format, Basic: true, Query, AwsSigV4, ClientCertificate, or DatabaseLogin: true" : "give only one of Header, Basic, Query, AwsSigV4 and DatabaseLogin"));
            return null;
        }

        if (inject.DatabaseLogin == true)
        {
            return DatabaseLoginInjector.Instance;
        }

        if (inject.AwsSigV4 is not null)
        {
            return CompileAwsSigV4(key, inject.AwsSigV4, credential, matchHosts, time, errors);
        }

        if (credential is not null && !credential.Yields.HasFlag(CredentialShape.Token))
        {
            // Signing keys are not a bearer value: putting a secret access key in a header or query
            // would hand it to the upstream.
            errors.Add(new(key, credential.Yields.HasFlag(CredentialShape.SigningKeys)
                ? "an " + credential.Source + " credential can only sign requests: use AwsSigV4"
                : "a " + credential.Source + " credential has no secret value to inject"));
            return null;
        }

        if (inject.Header is not null)
        {
            if (inject.Header.Length == 0 || !inject.Header.All(IsTokenChar))
            {
                errors.Add(new(key + ":Header", "'" + inject.Header + "' is not a valid header name"));
                return null;
            }

            if (ForbiddenHeaders.Contains(inject.Header))
            {
                errors.Add(new(key + ":Header", "'" + inject.Header + "' is managed by the HTTP connection and cannot carry a credential"));
                return null;
            }

            var format = inject.Format ?? HeaderInjector.Placeholder;
            var first = format.IndexOf(HeaderInjector.Placeholder, StringComparison.Ordinal);
            if (first < 0 || format.IndexOf(HeaderInjector.Placeholder, first + 1, StringComparison.Ordinal) >= 0)
            {
                errors.Add(new(key + ":Format", "must contain {token} exactly once"));
                return null;
            }

            if (format.Any(char.IsControl))
            {
                errors.Add(new(key + ":Format", "must not contain control characters"));
                return null;
            }

            return new HeaderInjector(inject.Header, format);
        }

        if (inject.Basic == true)
        {
            // Some sources bring their own user name (a Vault dynamic secret, with each lease).
            if (credential is not null && !credential.Yields.HasFlag(CredentialShape.UsernamePassword))
            {
                errors.Add(new(key + ":Basic", "needs a user name: set Username or UsernameFile on the credential"));
                return null;
            }

            return new BasicAuthInjector();
        }

        if (string.IsNullOrEmpty(inject.Query) || inject.Query.Any(ch => char.IsControl(ch) || ch is '&' or '=' or '#' or ' '))
        {
            errors.Add(new(key + ":Query", "'" + inject.Query + "' is not a valid query parameter name"));
            return null;
        }

        return new QueryInjector(inject.Query);
    }

    /// <summary>
    /// Two policies that can match the same request with the same specificity would make the winner
    /// depend on declaration order, so that is a configuration error.
    /// </summary>
    private static void CheckAmbiguousPolicies(List<CompiledPolicy> policies, List<ConfigError> errors)
    {
        for (var i = 0; i < policies.Count; i++)
        {
            for (var j = i + 1; j < policies.Count; j++)
            {
                var a = policies[i];
                var b = policies[j];
                if (a.PathPrefix != b.PathPrefix || (a.Methods is null) != (b.Methods is null) || (a.Ports is null) != (b.Ports is null) ||
                    a.Conditions.Rank != b.Conditions.Rank || a.Conditions.IsDisjointFrom(b.Conditions))
                {
                    continue;
                }

                // DatabaseLogin policies for different logins never compete (PolicySet.EvaluateLogin).
                if (a.Injection is DatabaseLoginInjector && b.Injection is DatabaseLoginInjector && !string.Equals(a.CredentialName, b.CredentialName, StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                if (a.Methods is not null && !a.Methods.Intersect(b.Methods!).Any())
                {
                    continue;
                }

                if (a.Ports is not null && !a.Ports.Intersect(b.Ports!).Any())
                {
                    continue;
                }

                if ((a.Schemes ?? ["http", "https"]).Intersect(b.Schemes ?? ["http", "https"]).Any() is false)
                {
                    continue;
                }

                foreach (var ha in a.Hosts)
                {
                    var tie = b.Hosts.FirstOrDefault(hb => ha.IsWildcard == hb.IsWildcard && ha.Value.Length == hb.Value.Length && ha.Overlaps(hb));
                    if (tie is not null)
                    {
                        var (first, second) = string.CompareOrdinal(a.Name, b.Name) < 0 ? (a, b) : (b, a);
                        errors.Add(new(
                            Root + ":Policies:" + second.Name,
                            "matches the same requests as policy '" + first.Name + "' (host " + tie.Text + ", path prefix '" + a.PathPrefix + "') with equal specificity; make one more specific"));
                        goto nextPair;
                    }
                }

            nextPair:;
            }
        }
    }

    private IWorkloadIdentitySettings? CompileIdentity(IdentityOptions? identity, List<ConfigError> errors)
    {
        var key = Root + ":Identity";
        if (identity is null)
        {
            return null;
        }

        var start = errors.Count;
        if (string.Equals(identity.Source, SpiffeJwtIdentitySettings.SourceName, StringComparison.OrdinalIgnoreCase))
        {
            return CompileSpiffeIdentity(key, identity, errors);
        }

        if (!string.Equals(identity.Source, "TokenFile", StringComparison.OrdinalIgnoreCase))
        {
            errors.Add(new(key + ":Source", identity.Source is null ? "is required (TokenFile or SpiffeWorkloadApi)" : "'" + identity.Source + "' is not an identity source; expected TokenFile or SpiffeWorkloadApi"));
        }

        foreach (var (name, value) in new[] { ("Socket", identity.Socket), ("SpiffeId", identity.SpiffeId) })
        {
            if (value is not null)
            {
                errors.Add(new(key + ":" + name, "applies only to Source SpiffeWorkloadApi"));
            }
        }

        // The token file may appear after start (a projected volume is written by the kubelet); a
        // missing file means "no valid identity yet", reported per request, not a config error.
        string? path = null;
        if (string.IsNullOrWhiteSpace(identity.Path))
        {
            errors.Add(new(key + ":Path", "is required: the file the workload's identity token is read from"));
        }
        else
        {
            path = Path.GetFullPath(Path.Combine(_baseDirectory, identity.Path));

            // The token is exchanged for credentials: whoever reads it can do the same.
            _secretFiles.Add(new SecretFile(key + ":Path", path));
        }

        Uri? jwks = null;
        if (identity.JwksUrl is not null && (!Uri.TryCreate(identity.JwksUrl, UriKind.Absolute, out jwks) || !SigningKeySource.IsTrustworthyKeyUrl(jwks) || !string.IsNullOrEmpty(jwks.UserInfo)))
        {
            errors.Add(new(key + ":JwksUrl", "'" + WithoutUserInfo(identity.JwksUrl) + "' is not an absolute https URL without user info (http only for loopback): keys fetched in the clear could be swapped"));
        }

        if (identity.Issuer is not null && identity.JwksUrl is null &&
            (!Uri.TryCreate(identity.Issuer, UriKind.Absolute, out var issuerUri) || !SigningKeySource.IsTrustworthyKeyUrl(issuerUri)))
        {
            errors.Add(new(key + ":Issuer", "'" + identity.Issuer + "' is not an https URL (http only for loopback), so its signing keys cannot be discovered safely; give JwksUrl as well"));
        }

        // A verified token without an audience check would accept any token of that issuer (the
        // pod's default service-account token, say), not the one projected for this proxy.
        if ((identity.JwksUrl is not null || identity.Issuer is not null) && string.IsNullOrWhiteSpace(identity.Audience))
        {
            errors.Add(new(key + ":Audience", "is required when the token is verified (JwksUrl or Issuer): the audience the token was projected for, e.g. secretless-proxy"));
        }

        var skew = NonNegative(identity.ClockSkew, TimeSpan.FromSeconds(30), key + ":ClockSkew", errors);

        // The keys decide whose tokens verify: served by another local process, they would let it
        // mint any identity. Discovery's jwks_uri is fetched over the same transport.
        IssuerEndpoint? keysEndpoint = null;
        if (errors.Count == start && (jwks ?? (identity.Issuer is null ? null : new Uri(identity.Issuer))) is { } keysUrl)
        {
            keysEndpoint = CompileIssuerEndpoint(key, jwks is not null ? "JwksUrl" : "Issuer", keysUrl, identity.UnixSocket, identity.PinnedCertificateSha256, identity.AllowLoopbackSquatting, "the request for the signing keys, and with its own keys the power to mint any workload identity", errors);
        }
        else if (errors.Count == start && (identity.UnixSocket is not null || identity.PinnedCertificateSha256 is not null || identity.AllowLoopbackSquatting is not null))
        {
            errors.Add(new(key, IssuerEndpointKeys + " apply to the key endpoint only: give JwksUrl or Issuer"));
        }

        return errors.Count > start ? null : new TokenFileIdentitySettings(path!, identity.Issuer, identity.Audience, jwks, skew, keysEndpoint);
    }

    /// <summary>Mon … Sun, or the full English name, in any case.</summary>
    private static DayOfWeek? ParseDay(string? text)
    {
        foreach (var day in Enum.GetValues<DayOfWeek>())
        {
            var name = day.ToString();
            if (string.Equals(text, name, StringComparison.OrdinalIgnoreCase) || string.Equals(text, name[..3], StringComparison.OrdinalIgnoreCase))
            {
                return day;
            }
        }

        return null;
    }

    /// <summary>Returns the policy's conditions, or null (with errors) when one is invalid.</summary>
    private static PolicyConditions? CompileConditions(string key, PolicyOptions p, Dictionary<string, string> proxyLabels, bool identityConfigured, bool identityVerified, List<ConfigError> errors)
    {
        var start = errors.Count;
        CallerCondition? caller = null;
        if (p.Caller is { } c)
        {
            if (c.Uids is null && c.Executables is null && c.ExecutableSha256 is null)
            {
                errors.Add(new(key + ":Caller", "give at least one of Uids, Executables and ExecutableSha256"));
            }

            for (var i = 0; i < (c.Uids?.Length ?? 0); i++)
            {
                if (c.Uids![i] < 0)
                {
                    errors.Add(new(key + ":Caller:Uids:" + i, c.Uids[i] + " is not a uid"));
                }
            }

            for (var i = 0; i < (c.Executables?.Length ?? 0); i++)
            {
                if (string.IsNullOrEmpty(c.Executables![i]) || c.Executables[i][0] != '/')
                {
                    errors.Add(new(key + ":Caller:Executables:" + i, "'" + c.Executables[i] + "' is not an absolute path"));
                }
            }

            for (var i = 0; i < (c.ExecutableSha256?.Length ?? 0); i++)
            {
                var h = c.ExecutableSha256![i];
                if (h is null || h.Length != 64 || !h.All(char.IsAsciiHexDigit))
                {
                    errors.Add(new(key + ":Caller:ExecutableSha256:" + i, "is not a SHA-256 in hex (64 characters)"));
                }
            }

            // What an executable condition guarantees rests on uid separation: a process can pass
            // its socket to an allowed binary and keep writing to it (in flight in a Unix socket,
            // where no scan of /proc sees it), or run the binary under LD_PRELOAD or ptrace, with
            // any uid that can do those things to it. So the configuration must name the uids whose
            // every process is trusted, or say in so many words that it accepts that.
            var namesExecutable = c.Executables is not null || c.ExecutableSha256 is not null;
            if (namesExecutable && c.Uids is null && c.SameUidCanImpersonate != true)
            {
                errors.Add(new(key + ":Caller", "Executables and ExecutableSha256 are a boundary only between uids: any process of the caller's uid can pass as an allowed executable (hand it its socket, LD_PRELOAD, ptrace); add Uids with the uids whose every process you trust, or set SameUidCanImpersonate: true to accept that"));
            }
            else if (!namesExecutable && c.SameUidCanImpersonate is not null)
            {
                errors.Add(new(key + ":Caller:SameUidCanImpersonate", "applies only to Executables and ExecutableSha256, which this condition does not give"));
            }

            caller = new CallerCondition(c.Uids, c.Executables, c.ExecutableSha256);
        }

        IdentityCondition? identity = null;
        if (p.Identity is { } id)
        {
            if (!identityConfigured)
            {
                errors.Add(new(key + ":Identity", "needs the workload identity: configure SecretlessProxy:Identity"));
            }
            else if (!identityVerified)
            {
                // Claims of an unverified token are whatever the file says: no basis for access.
                errors.Add(new(key + ":Identity", "needs a verified workload identity: set SecretlessProxy:Identity:JwksUrl or Issuer"));
            }

            if (id.Subjects is null && id.Issuers is null && id.Namespaces is null && id.ServiceAccounts is null && id.Audiences is null)
            {
                errors.Add(new(key + ":Identity", "give at least one of Subjects, Issuers, Audiences, Namespaces and ServiceAccounts"));
            }

            identity = new IdentityCondition(id.Subjects, id.Issuers, id.Namespaces, id.ServiceAccounts, id.Audiences);
        }

        TimeWindow? when = null;
        if (p.When is { } w)
        {
            HashSet<DayOfWeek>? days = null;
            if (w.Days is not null)
            {
                days = [];
                for (var i = 0; i < w.Days.Length; i++)
                {
                    var d = ParseDay(w.Days[i]);
                    if (d is null)
                    {
                        errors.Add(new(key + ":When:Days:" + i, "'" + w.Days[i] + "' is not a day; expected Mon, Tue, Wed, Thu, Fri, Sat or Sun"));
                    }
                    else
                    {
                        days.Add(d.Value);
                    }
                }
            }

            TimeOnly? from = null, to = null;
            if (w.Between is not null)
            {
                var parts = w.Between.Split('-');
                if (parts.Length != 2 ||
                    !TimeOnly.TryParseExact(parts[0].Trim(), "HH:mm", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var f) ||
                    !TimeOnly.TryParseExact(parts[1].Trim(), "HH:mm", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var t))
                {
                    errors.Add(new(key + ":When:Between", "'" + w.Between + "' is not a window HH:mm-HH:mm"));
                }
                else if (f == t)
                {
                    errors.Add(new(key + ":When:Between", "'" + w.Between + "' is empty: start and end are equal"));
                }
                else
                {
                    (from, to) = (f, t);
                }
            }

            if (w.Days is null && w.Between is null)
            {
                errors.Add(new(key + ":When", "give Days, Between, or both"));
            }

            var zone = TimeZoneInfo.Utc;
            if (w.TimeZone is not null && !TimeZoneInfo.TryFindSystemTimeZoneById(w.TimeZone, out zone))
            {
                errors.Add(new(key + ":When:TimeZone", "'" + w.TimeZone + "' is not a time zone known to this system (an IANA id such as Europe/Berlin)"));
                zone = TimeZoneInfo.Utc;
            }

            when = new TimeWindow(days, from, to, zone);
        }

        IReadOnlyDictionary<string, string>? labels = null;
        var labelsMatch = true;
        string? failedLabel = null;
        if (p.Labels is { Count: > 0 })
        {
            labels = new Dictionary<string, string>(p.Labels, StringComparer.Ordinal);
            foreach (var (name, value) in p.Labels.OrderBy(l => l.Key, StringComparer.Ordinal))
            {
                if (!proxyLabels.TryGetValue(name, out var actual) || !string.Equals(actual, value, StringComparison.Ordinal))
                {
                    labelsMatch = false;
                    failedLabel = name;
                    break;
                }
            }
        }

        return errors.Count > start ? null : new PolicyConditions(caller, identity, when, labels, labelsMatch, failedLabel);
    }

    /// <summary>A file that holds a secret: required like any other, and recorded in <see cref="ProxySnapshot.SecretFiles"/>.</summary>
    private string RequireSecretFile(string path, string key, List<ConfigError> errors) => _files.RequireSecret(path, key, errors);

    private string RequireFile(string path, string key, List<ConfigError> errors) => _files.Require(path, key, errors);

    /// <summary>
    /// <c>unix:/run/secretless/proxy.sock</c>: a Unix socket listener, where the kernel names the
    /// caller (SO_PEERCRED) and file permissions decide who may connect at all.
    /// </summary>
    private static EndPoint? ParseUnixUrl(string url, string key, List<ConfigError> errors)
    {
        var path = url["unix:".Length..];
        if (path.Length == 0 || path[0] != '/')
        {
            errors.Add(new(key, "'" + url + "' must name an absolute socket path, e.g. unix:/run/secretless/proxy.sock"));
            return null;
        }

        // sun_path is 108 bytes on Linux, including the terminating NUL.
        if (System.Text.Encoding.UTF8.GetByteCount(path) > 107)
        {
            errors.Add(new(key, "the socket path is longer than the 107 bytes a Unix socket address can hold"));
            return null;
        }

        return new System.Net.Sockets.UnixDomainSocketEndPoint(path);
    }

    internal static IPEndPoint? ParseBindUrl(string? url, string key, List<ConfigError> errors)
    {
        if (string.IsNullOrWhiteSpace(url))
        {
            errors.Add(new(key, "is required (for example http://127.0.0.1:8081)"));
            return null;
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != "http" || uri.AbsolutePath != "/" || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.UserInfo))
        {
            errors.Add(new(key, "'" + WithoutUserInfo(url) + "' is not an http://address:port URL"));
            return null;
        }

        if (!HasExplicitPort(url))
        {
            errors.Add(new(key, "'" + url + "' must name a port"));
            return null;
        }

        IPAddress? address;
        if (string.Equals(uri.Host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            address = IPAddress.Loopback;
        }
        else if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out address))
        {
            errors.Add(new(key, "'" + uri.Host + "' is not an IP address or localhost; a listener binds an address, not a name"));
            return null;
        }

        return new IPEndPoint(address, uri.Port);
    }

    /// <summary>The URL without its user info (<see cref="ConfigChecks.WithoutUserInfo"/>), for messages.</summary>
    internal static string WithoutUserInfo(string url) => ConfigChecks.WithoutUserInfo(url);

    /// <summary>Whether the authority names a port; an IPv6 literal's own colons do not count.</summary>
    private static bool HasExplicitPort(string url)
    {
        var start = url.IndexOf("://", StringComparison.Ordinal) + 3;
        var end = url.IndexOfAny(['/', '?', '#'], start);
        var authority = end < 0 ? url[start..] : url[start..end];
        var hostEnd = authority.LastIndexOf(']');
        return authority.IndexOf(':', hostEnd + 1) >= 0;
    }

    private static UnmatchedBehavior? ParseUnmatched(string? value, string key, List<ConfigError> errors)
    {
        switch (value?.ToLowerInvariant())
        {
            case null:
                return null;
            case "deny":
                return UnmatchedBehavior.Deny;
            case "passthrough":
                return UnmatchedBehavior.PassThrough;
            case "observe":
                return UnmatchedBehavior.Observe;
            default:
                errors.Add(new(key, "'" + value + "' is not valid; expected Deny, PassThrough or Observe"));
                return null;
        }
    }

    private static TimeSpan Positive(TimeSpan? value, TimeSpan fallback, string key, List<ConfigError> errors) => ConfigChecks.Positive(value, fallback, key, errors);

    private static TimeSpan NonNegative(TimeSpan? value, TimeSpan fallback, string key, List<ConfigError> errors) => ConfigChecks.NonNegative(value, fallback, key, errors);

    // RFC 9110 section 5.6.2 token characters.
    private static bool IsTokenChar(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c);
}
