using SecretlessProxy.Core;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Credentials;

/// <summary>
/// What a <see cref="ICredentialSourceKind"/> compiles one credential with: where its keys live,
/// the keys every kind shares, where problems go, and what a built source runs on.
/// </summary>
internal sealed class CredentialSourceContext
{
    /// <summary>The credential's section (<c>SecretlessProxy:Credentials:orders</c>): problems are reported under it.</summary>
    public required string Key { get; init; }

    /// <summary>The <c>Source</c> value as written, for messages that name it.</summary>
    public required string Source { get; init; }

    /// <summary>The inline user name, when given.</summary>
    public string? Username { get; init; }

    /// <summary><c>UsernameFile</c> as a full path, when given (required to exist by the caller).</summary>
    public string? UsernameFile { get; init; }

    /// <summary>Whether <c>SecretlessProxy:Identity</c> is configured: sources that present the workload token need it.</summary>
    public required bool IdentityConfigured { get; init; }

    public required List<ConfigError> Errors { get; init; }

    public required TimeProvider Time { get; init; }

    /// <summary>The shared client for token endpoints; an issuer with its own transport gets one from <see cref="IssuerTransport.InvokerFor"/>.</summary>
    public required HttpMessageInvoker TokenClient { get; init; }

    /// <summary>The running proxy's workload identity, for sources that present its token.</summary>
    public required WorkloadIdentityAccessor Identity { get; init; }

    public required ILoggerFactory LoggerFactory { get; init; }

    public required ConfigFiles Files { get; init; }

    /// <summary>Where every issuer endpoint of the configuration is recorded, for <c>validate</c>'s warnings.</summary>
    public required List<IssuerEndpoint> IssuerEndpoints { get; init; }

    /// <summary>The references between this configuration's credentials (<see cref="ReferenceCredential"/>).</summary>
    public required CredentialReferences References { get; init; }

    /// <summary>The credential's name (the last segment of <see cref="Key"/>).</summary>
    public string Name => Key[(Key.LastIndexOf(':') + 1)..];

    /// <summary>
    /// Another credential of this configuration that the source builds on, named by its key
    /// <paramref name="subKey"/>: it must exist and yield <paramref name="needs"/> (checked by shape,
    /// never by source name), and references must not form a cycle. Null when a problem was reported.
    /// </summary>
    /// <param name="what">What the named credential provides, for messages ("the keys that sign the token").</param>
    public CredentialReference? ReferenceCredential(string subKey, string? name, CredentialShape needs, string what) =>
        References.Add(Name, Key + ":" + subKey, name, needs, what, Errors);

    /// <summary>Whether referenced files must exist now, so their content can be checked as well.</summary>
    public bool CheckFiles => Files.CheckFiles;

    public string RequireFile(string path, string key) => Files.Require(path, key, Errors);

    /// <summary>A file that holds a secret: required like any other, and recorded for the permission checks.</summary>
    public string RequireSecretFile(string path, string key) => Files.RequireSecret(path, key, Errors);

    /// <summary>Checks how the issuer at <paramref name="url"/> is reached (<see cref="IssuerEndpointRules.Compile"/>) and records it.</summary>
    /// <param name="urlKey">The URL's own key (<c>TokenUrl</c>), under <see cref="Key"/>.</param>
    /// <param name="carries">What a process answering in the issuer's place would receive.</param>
    public IssuerEndpoint? CompileIssuerEndpoint(string urlKey, Uri url, IIssuerEndpointOptions options, string carries)
    {
        var endpoint = IssuerEndpointRules.Compile(Key, urlKey, url, options.UnixSocket, options.PinnedCertificateSha256, options.AllowLoopbackSquatting, carries, Errors);
        if (endpoint is not null)
        {
            IssuerEndpoints.Add(endpoint);
        }

        return endpoint;
    }

    /// <summary><c>Timeout</c>, <c>RetryAttempts</c> and <c>RetryDelay</c>, checked alike for every source that fetches from an issuer.</summary>
    public FetchLimits CompileFetchLimits(IssuerSourceOptions options)
    {
        var retryAttempts = options.RetryAttempts ?? FetchLimits.DefaultRetryAttempts;
        if (retryAttempts is < 0 or > FetchLimits.MaxRetryAttempts)
        {
            Errors.Add(new(Key + ":RetryAttempts", "must be between 0 and " + FetchLimits.MaxRetryAttempts));
        }

        var timeout = ConfigChecks.Positive(options.Timeout, FetchLimits.DefaultTimeout, Key + ":Timeout", Errors);
        var retryDelay = ConfigChecks.NonNegative(options.RetryDelay, FetchLimits.DefaultRetryDelay, Key + ":RetryDelay", Errors);
        return new FetchLimits(timeout, retryAttempts, retryDelay);
    }

    /// <summary>The three issuer keys on a source that has no issuer URL of its own (File, AzureManagedIdentity).</summary>
    public void RejectIssuerEndpointKeys(IIssuerEndpointOptions options, string why)
    {
        foreach (var (name, value) in new[] { ("UnixSocket", (object?)options.UnixSocket), ("PinnedCertificateSha256", (object?)options.PinnedCertificateSha256), ("AllowLoopbackSquatting", (object?)options.AllowLoopbackSquatting) })
        {
            if (value is not null)
            {
                Errors.Add(new(Key + ":" + name, "does not apply to " + Source + ": " + why));
            }
        }
    }
}
