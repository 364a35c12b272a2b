using System.Net;
using System.Collections.Frozen;
using System.Net.Http.Headers;
using System.Text;
using Polly;
using SecretlessProxy.Core;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Credentials;

/// <summary>
/// Fetches an access token with the client-credentials grant (RFC 6749 section 4.4). The client
/// secret is read from its file at every fetch so that a rotated Secret is picked up, and the
/// token endpoint's answers are reduced to safe messages: a body is never echoed into an error,
/// because some endpoints repeat the submitted secret in their error description.
/// </summary>
internal sealed class OAuth2ClientCredentialsSource : ICredentialSource
{
    private const int MaxResponseBytes = 256 * 1024;

    private readonly OAuth2ClientCredentialsSettings _options;
    private readonly HttpMessageInvoker _http;
    private readonly TimeProvider _time;
    private readonly ResiliencePipeline _retry;
    private readonly WorkloadIdentityAccessor? _assertion;

    /// <param name="workloadAssertion">When set, the client authenticates with the workload token (RFC 7523) instead of a secret.</param>
    public OAuth2ClientCredentialsSource(OAuth2ClientCredentialsSettings options, HttpMessageInvoker http, TimeProvider time, WorkloadIdentityAccessor? workloadAssertion = null)
    {
        _assertion = workloadAssertion;
        _options = options;
        _http = http;
        _time = time;

        _retry = FetchRetry.Create(time, options.RetryAttempts, options.RetryDelay);
    }

    public string Kind => "OAuth2ClientCredentials";

    public CredentialSourceDescription Describe() => new(
        "token endpoint " + CredentialSourceDescription.Authority(_options.TokenUrl) + " (client " + _options.ClientId + ")",
        "a new token is fetched at RefreshAt of its lifetime",
        "expires_in as the token endpoint answers (DefaultLifetime " + _options.DefaultLifetime.ToString("c", System.Globalization.CultureInfo.InvariantCulture) + " when it gives none)",
        CredentialSourceDescription.DropCacheOnly + " (no RFC 7009 revocation is sent)");

    public async Task<Credential> FetchAsync(CancellationToken cancellationToken) =>
        await _retry.ExecuteAsync(static (self, ct) => new ValueTask<Credential>(self.FetchOnceAsync(ct)), this, cancellationToken).ConfigureAwait(false);

    private async Task<Credential> FetchOnceAsync(CancellationToken cancellationToken)
    {
        string clientSecret;
        var assertion = false;
        if (_assertion is not null)
        {
            var identity = await _assertion.GetAsync(cancellationToken).ConfigureAwait(false);
            if (identity.Identity is null)
            {
                // Not retried within this fetch: the cache's backoff asks again, by when a rotated token may be there.
                throw new CredentialFetchException("no valid workload identity to use as the client assertion: " + identity.FailureReason, isTransient: false);
            }

            clientSecret = identity.Identity.Token;
            assertion = true;
        }
        else
        {
            clientSecret = await SecretFileReader.ReadAsync(_options.ClientSecretFile!, "client secret", cancellationToken).ConfigureAwait(false);
        }

        var username = await UsernameResolver.ResolveAsync(_options.Username, _options.UsernameFile, cancellationToken).ConfigureAwait(false);

        using var request = BuildRequest(clientSecret, assertion);
        var requestedAt = _time.GetUtcNow();

        // The timeout is wall-clock on purpose: it bounds a network wait, not a credential lifetime.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CredentialFetchException("token endpoint did not answer within " + _options.Timeout.TotalSeconds + " s", isTransient: true);
        }
        catch (HttpRequestException ex)
        {
            throw new CredentialFetchException("token endpoint unreachable (" + IssuerTransport.Reason(ex) + ")", isTransient: true);
        }

        using (response)
        {
            byte[] body;
            try
            {
                body = (await BoundedContent.ReadAsync(response.Content, MaxResponseBytes, timeout.Token).ConfigureAwait(false) ?? throw new CredentialFetchException("token endpoint answer is larger than 256 KiB", isTransient: true));
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new CredentialFetchException("token endpoint did not finish its answer within " + _options.Timeout.TotalSeconds + " s", isTransient: true);
            }
            catch (HttpRequestException ex)
            {
                throw new CredentialFetchException("token endpoint connection failed while reading the answer (" + ex.HttpRequestError + ")", isTransient: true);
            }

            var status = (int)response.StatusCode;
            if (status is < 200 or > 299)
            {
                var transient = status is 408 or 429 or >= 500;
                var code = OAuth2TokenResponse.TryReadErrorCode(body, KnownErrorCodes);
                throw new CredentialFetchException(
                    "token endpoint answered " + status + (code is null ? string.Empty : " (" + code + ")"),
                    transient);
            }

            return OAuth2TokenResponse.Read(body, Endpoint).ToCredential(Endpoint, _options.DefaultLifetime, username, requestedAt);
        }
    }

    /// <param name="secret">The client secret, or the workload token when <paramref name="assertion"/> is set.</param>
    private HttpRequestMessage BuildRequest(string secret, bool assertion)
    {
        var form = new List<KeyValuePair<string, string>>(8) { new("grant_type", "client_credentials") };
        if (_options.Scopes.Count > 0)
        {
            form.Add(new("scope", string.Join(' ', _options.Scopes)));
        }

        if (_options.Audience is not null)
        {
            form.Add(new("audience", _options.Audience));
        }

        if (_options.Resource is not null)
        {
            form.Add(new("resource", _options.Resource));
        }

        foreach (var (key, value) in _options.Parameters)
        {
            form.Add(new(key, value));
        }

        var request = new HttpRequestMessage(HttpMethod.Post, _options.TokenUrl);
        if (assertion)
        {
            // RFC 7523 section 2.2 (JWT bearer client authentication), as Azure AD, Google and
            // Keycloak accept for workload identity federation.
            form.Add(new("client_id", _options.ClientId));
            form.Add(new("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
            form.Add(new("client_assertion", secret));
        }
        else if (_options.ClientAuthInBody)
        {
            form.Add(new("client_id", _options.ClientId));
            form.Add(new("client_secret", secret));
        }
        else
        {
            // RFC 6749 section 2.3.1: client id and secret are form-urlencoded before Base64.
            var raw = WebUtility.UrlEncode(_options.ClientId) + ":" + WebUtility.UrlEncode(secret);
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(raw)));
        }

        request.Content = new FormUrlEncodedContent(form);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        return request;
    }

    // Only codes from RFC 6749 section 5.2 and RFC 8707 are echoed: a free-form value could be anything.
    private const string Endpoint = "token endpoint";

    private static readonly FrozenSet<string> KnownErrorCodes = new[]
    {
        "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
        "invalid_scope", "invalid_target", "access_denied", "server_error", "temporarily_unavailable",
    }.ToFrozenSet(StringComparer.Ordinal);
}
