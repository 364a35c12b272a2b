using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;
using Microsoft.Identity.Client;
using Polly;
using SecretlessProxy.Core;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Credentials;

/// <summary>
/// A Microsoft Entra access token from Azure.Identity: <c>AzureWorkloadIdentity</c> (the workload
/// token as a federated client assertion, <see cref="ClientAssertionCredential"/>) or
/// <c>AzureManagedIdentity</c> (<see cref="ManagedIdentityCredential"/>: IMDS, App Service and the
/// other hosts the SDK knows). One SDK credential object per configured credential, so MSAL's own
/// token cache works across fetches.
/// </summary>
/// <remarks>
/// <para>
/// Workload identity uses <see cref="ClientAssertionCredential"/> fed by
/// <see cref="WorkloadIdentityAccessor"/> rather than <see cref="WorkloadIdentityCredential"/> with a
/// token file path: the token the proxy presents is then the one its identity stage read, verified
/// (when Issuer or JwksUrl is configured) and re-read on rotation; the SDK would read the file on
/// its own, unverified, and a failure would surface as an SDK message instead of the identity's reason.
/// </para>
/// <para>
/// MSAL keeps each token in its cache and returns it until about five minutes before it expires, on
/// the system clock. The credential cache's refresh ahead (at <c>RefreshAt</c> of the lifetime) may
/// therefore get the very token it already holds, with the same expiry: harmless, a local cache hit
/// with no network call, and the next refresh point comes sooner (a fraction of what remains) until
/// MSAL fetches anew. A value within its expiry skew is still never sent.
/// </para>
/// <para>
/// The SDK's own retries are off (<c>Retry.MaxRetries = 0</c>): the Polly pipeline here and the
/// cache's backoff own retries, and the SDK's network timeout is the configured one. The transport
/// is the proxy's token client (no environment proxy, no redirects), or one that also trusts
/// <c>CaFile</c>. SDK exception messages can hold response bodies, so they are never passed on:
/// errors are reduced to a status, a known OAuth error code and an <c>AADSTS</c> number.
/// </para>
/// </remarks>
internal sealed partial class AzureIdentityCredentialSource : ICredentialSource
{
    private static readonly HashSet<string> KnownErrorCodes = new(StringComparer.Ordinal)
    {
        "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
        "invalid_scope", "invalid_target", "access_denied", "temporarily_unavailable", "server_error",
    };

    private readonly Func<TokenCredential> _createCredential;
    private readonly string _issuingSystem;
    private volatile TokenCredential _credential;
    private readonly TokenRequestContext _request;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;
    private readonly string? _username;
    private readonly string? _usernameFile;
    private readonly ResiliencePipeline _retry;

    private AzureIdentityCredentialSource(string kind, string issuingSystem, Func<ClientOptionsSetup, TokenCredential> create, Settings settings, HttpMessageInvoker tokenClient, TimeProvider time, bool hostProvidedEndpoint = false)
    {
        Kind = kind;
        _issuingSystem = issuingSystem;
        _time = time;
        _timeout = settings.Timeout;
        _username = settings.Username;
        _usernameFile = settings.UsernameFile;
        _request = new TokenRequestContext([.. settings.Scopes]);

        // Every answer is read under a bound (Azure.Core would read any body whole).
        // A managed identity's endpoint comes from the host (IDENTITY_ENDPOINT, IMDS), not from this
        // configuration, and App Service and Arc put it on localhost: it gets a transport that does
        // not refuse loopback.
        HttpMessageHandler handler = settings.TrustedCaFile is null && settings.Endpoint is not { NeedsOwnTransport: true } && !hostProvidedEndpoint
            ? new BoundedInvokerHandler(tokenClient, "Microsoft Entra")
            : new BoundedInvokerHandler(new HttpMessageInvoker(CreateHandler(settings.TrustedCaFile, settings.Endpoint, hostProvidedEndpoint)), "Microsoft Entra", ownsInvoker: true);
        var setup = new ClientOptionsSetup(new HttpClientTransport(handler), settings.Timeout);
        _createCredential = () => create(setup);
        _credential = _createCredential();

        _retry = FetchRetry.Create(time, settings.RetryAttempts, settings.RetryDelay);
    }

    public string Kind { get; }

    public CredentialSourceDescription Describe() => new(
        _issuingSystem,
        "a new token at RefreshAt of its lifetime (MSAL may answer from its cache until about five minutes before expiry)",
        "expires_on as Microsoft Entra answers",
        CredentialSourceDescription.DropCacheOnly + " (MSAL's cache is dropped too)");

    /// <summary>A revoked token must not come back from MSAL's cache: a fresh SDK credential starts with an empty one.</summary>
    public ValueTask OnRevokedAsync(CancellationToken cancellationToken)
    {
        _credential = _createCredential();
        return ValueTask.CompletedTask;
    }

    /// <summary>Federated workload identity: the workload token is the client assertion (RFC 7523) for the Entra app <paramref name="clientId"/>.</summary>
    public static AzureIdentityCredentialSource ForWorkloadIdentity(string tenantId, string clientId, Uri authorityHost, Settings settings, WorkloadIdentityAccessor identity, HttpMessageInvoker tokenClient, TimeProvider time) =>
        new("AzureWorkloadIdentity", "Microsoft Entra " + CredentialSourceDescription.Authority(authorityHost) + ", tenant " + tenantId + ", client " + clientId, setup =>
        {
            var options = setup.Apply(new ClientAssertionCredentialOptions
            {
                AuthorityHost = authorityHost,
                // The authority is configured, not discovered: no call to instance discovery.
                DisableInstanceDiscovery = true,
            });
            return new ClientAssertionCredential(tenantId, clientId, ct => WorkloadAssertionAsync(identity, ct), options);
        }, settings, tokenClient, time);

    /// <summary>The host's managed identity: system-assigned, or the user-assigned one with <paramref name="clientId"/>.</summary>
    public static AzureIdentityCredentialSource ForManagedIdentity(string? clientId, Settings settings, HttpMessageInvoker tokenClient, TimeProvider time) =>
        new("AzureManagedIdentity", "the host's managed identity (" + (clientId is null ? "system-assigned" : "client " + clientId) + ")", setup =>
        {
            var id = clientId is null ? ManagedIdentityId.SystemAssigned : ManagedIdentityId.FromUserAssignedClientId(clientId);
            return new ManagedIdentityCredential(setup.Apply(new ManagedIdentityCredentialOptions(id)));
        }, settings, tokenClient, time, hostProvidedEndpoint: true);

    public async Task<Credential> FetchAsync(CancellationToken cancellationToken) =>
        await _retry.ExecuteAsync(static (self, ct) => new ValueTask<Credential>(self.FetchOnceAsync(ct)), this, cancellationToken).ConfigureAwait(false);

    private async Task<Credential> FetchOnceAsync(CancellationToken cancellationToken)
    {
        var username = await UsernameResolver.ResolveAsync(_username, _usernameFile, cancellationToken).ConfigureAwait(false);
        var obtainedAt = _time.GetUtcNow();

        // Wall-clock on purpose: it bounds a network wait, not a credential lifetime.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);

        AccessToken token;
        try
        {
            token = await _credential.GetTokenAsync(_request, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw Translate(ex, timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested);
        }

        if (string.IsNullOrEmpty(token.Token))
        {
            throw new CredentialFetchException(Kind + ": Microsoft Entra answered without an access token", isTransient: true);
        }

        SecretFileReader.EnsurePrintable(token.Token, "the access token");

        // MSAL stamps ExpiresOn on the system clock (it cannot know ours); what counts is how long the
        // token has left, which is then placed on this source's clock. Measured after the call, so
        // the lifetime errs short.
        var remaining = token.ExpiresOn - DateTimeOffset.UtcNow;
        if (remaining <= TimeSpan.Zero)
        {
            throw new CredentialFetchException(Kind + ": Microsoft Entra issued a token that has already expired", isTransient: false);
        }

        return new Credential(token.Token, username, obtainedAt, obtainedAt + remaining);
    }

    private static async Task<string> WorkloadAssertionAsync(WorkloadIdentityAccessor identity, CancellationToken cancellationToken)
    {
        var status = await identity.GetAsync(cancellationToken).ConfigureAwait(false);
        // Thrown through the SDK and found again by Translate, so its reason (never the token) reaches the operator.
        return status.Identity?.Token
            ?? throw new CredentialFetchException("no valid workload identity to use as the client assertion: " + status.FailureReason, isTransient: false);
    }

    /// <summary>
    /// Reduces an SDK failure to a message that holds no response body: the HTTP status, a known
    /// OAuth error code and the <c>AADSTS</c> number (digits only) that Entra puts in its messages.
    /// </summary>
    private CredentialFetchException Translate(Exception ex, bool timedOut)
    {
        if (timedOut)
        {
            return new CredentialFetchException(Kind + ": Microsoft Entra did not answer within " + _timeout.TotalSeconds + " s", isTransient: true);
        }

        int? status = null;
        string? code = null;
        string? aadsts = null;
        HttpRequestException? network = null;
        for (var e = ex; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case CredentialFetchException own:
                    return own;
                case MsalServiceException msal:
                    status ??= msal.StatusCode > 0 ? msal.StatusCode : null;
                    code ??= KnownErrorCodes.Contains(msal.ErrorCode ?? string.Empty) ? msal.ErrorCode : null;
                    break;
                case RequestFailedException failed:
                    status ??= failed.Status > 0 ? failed.Status : null;
                    break;
                case HttpRequestException http:
                    network ??= http;
                    break;
            }

            aadsts ??= AadstsCode().Match(e.Message) is { Success: true } m ? m.Value : null;
        }

        if (network is not null && status is null)
        {
            return new CredentialFetchException(Kind + ": token endpoint unreachable (" + IssuerTransport.Reason(network) + ")", isTransient: true);
        }

        var detail = string.Join(", ", new[] { code, aadsts }.Where(s => s is not null));
        var suffix = detail.Length == 0 ? string.Empty : " (" + detail + ")";
        if (status is { } s)
        {
            return new CredentialFetchException(Kind + ": Microsoft Entra answered " + s + suffix, isTransient: s is 408 or 429 or >= 500);
        }

        return ex switch
        {
            // The host offers no managed identity (no IMDS, no App Service variables): not worth retrying within a fetch.
            CredentialUnavailableException => new CredentialFetchException(Kind + ": no managed identity is available on this host" + suffix, isTransient: false),
            AuthenticationFailedException => new CredentialFetchException(Kind + ": authentication with Microsoft Entra failed" + suffix, isTransient: false),
            _ => new CredentialFetchException(Kind + ": token request failed (" + ex.GetType().Name + ")" + suffix, isTransient: false),
        };
    }

    [GeneratedRegex(@"\bAADSTS[0-9]{4,9}\b", RegexOptions.CultureInvariant)]
    private static partial Regex AadstsCode();

    /// <summary>The issuer transport for the authority (<paramref name="endpoint"/>), trusting <paramref name="caFile"/> in addition to the system store.</summary>
    private static SocketsHttpHandler CreateHandler(string? caFile, IssuerEndpoint? endpoint, bool hostProvided)
    {
        X509Certificate2Collection? trust = null;
        if (caFile is not null)
        {
            trust = [];
            trust.ImportFromPemFile(caFile);
        }

        return IssuerTransport.CreateHandler(endpoint, trust, hostProvided);
    }

    /// <summary>The validated settings both Azure kinds share.</summary>
    public sealed record Settings(
        IReadOnlyList<string> Scopes,
        string? TrustedCaFile,
        TimeSpan Timeout,
        int RetryAttempts,
        TimeSpan RetryDelay,
        string? Username,
        string? UsernameFile,
        IssuerEndpoint? Endpoint = null);

    /// <summary>The SDK options every credential gets: our transport, our timeout, no SDK retries, no SDK logs or spans.</summary>
    private sealed class ClientOptionsSetup(HttpPipelineTransport transport, TimeSpan timeout)
    {
        public T Apply<T>(T options)
            where T : TokenCredentialOptions
        {
            options.Transport = transport;
            options.Retry.MaxRetries = 0;
            options.Retry.NetworkTimeout = timeout;
            options.Diagnostics.IsLoggingEnabled = false;
            options.Diagnostics.IsDistributedTracingEnabled = false;
            return options;
        }
    }

}
