using System.Collections.Frozen;
using System.Net.Http.Headers;
using Polly;
using SecretlessProxy.Core;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Credentials;

/// <summary>
/// Exchanges the workload identity token for an access token with the OAuth 2.0 token exchange
/// grant (RFC 8693): the workload token is the subject token and the only thing presented, so no
/// client secret exists anywhere. Works against any RFC 8693 server, including Google's Security
/// Token Service (workload identity federation), which takes the same form-encoded request.
/// Answers are reduced to safe messages: <c>error_description</c> and response bodies are never
/// echoed, since a server may repeat the subject token in them.
/// </summary>
internal sealed class OAuth2TokenExchangeSource : ICredentialSource
{
    /// <summary>RFC 8693 section 2.1.</summary>
    public const string GrantType = "urn:ietf:params:oauth:grant-type:token-exchange";

    /// <summary>RFC 8693 section 3: the workload token is a JWT.</summary>
    public const string JwtTokenType = "urn:ietf:params:oauth:token-type:jwt";

    private const int MaxResponseBytes = 256 * 1024;

    // RFC 6749 section 5.2 and RFC 8693 section 2.2.2 (invalid_target): a fixed vocabulary, safe to
    // report. Anything else the server puts in "error" could be free text and is dropped.
    private const string Endpoint = "token exchange endpoint";

    private static readonly FrozenSet<string> KnownErrorCodes = new[]
    {
        "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
        "invalid_scope", "invalid_target",
    }.ToFrozenSet(StringComparer.Ordinal);

    private readonly Settings _settings;
    private readonly HttpMessageInvoker _http;
    private readonly TimeProvider _time;
    private readonly WorkloadIdentityAccessor _identity;
    private readonly ResiliencePipeline _retry;

    public OAuth2TokenExchangeSource(Settings settings, HttpMessageInvoker http, TimeProvider time, WorkloadIdentityAccessor identity)
    {
        ArgumentNullException.ThrowIfNull(settings);
        _settings = settings;
        _http = http;
        _time = time;
        _identity = identity;

        _retry = FetchRetry.Create(time, settings.RetryAttempts, settings.RetryDelay);
    }

    public string Kind => "OAuth2TokenExchange";

    public CredentialSourceDescription Describe() => new(
        "token exchange endpoint " + CredentialSourceDescription.Authority(_settings.TokenUrl) + (_settings.Audience is null ? string.Empty : " (audience " + _settings.Audience + ")"),
        "exchanged again for the current workload token at RefreshAt of its lifetime",
        "expires_in as the token endpoint answers (DefaultLifetime " + _settings.DefaultLifetime.ToString("c", System.Globalization.CultureInfo.InvariantCulture) + " when it gives none)",
        CredentialSourceDescription.DropCacheOnly + " (no RFC 7009 revocation is sent)");

    public async Task<Credential> FetchAsync(CancellationToken cancellationToken) =>
        await _retry.ExecuteAsync(static (self, ct) => new ValueTask<Credential>(self.FetchOnceAsync(ct)), this, cancellationToken).ConfigureAwait(false);

    private async Task<Credential> FetchOnceAsync(CancellationToken cancellationToken)
    {
        var status = await _identity.GetAsync(cancellationToken).ConfigureAwait(false);
        if (status.Identity is null)
        {
            // Not retried within this fetch: the cache's backoff asks again, by when a rotated token may be there.
            throw new CredentialFetchException("no valid workload identity to use as the subject token: " + status.FailureReason, isTransient: false);
        }

        var username = await UsernameResolver.ResolveAsync(_settings.Username, _settings.UsernameFile, cancellationToken).ConfigureAwait(false);
        using var request = BuildRequest(status.Identity.Token);
        var requestedAt = _time.GetUtcNow();

        // Wall-clock on purpose: it bounds a network wait, not a credential lifetime.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_settings.Timeout);

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CredentialFetchException("token exchange endpoint did not answer within " + _settings.Timeout.TotalSeconds + " s", isTransient: true);
        }
        catch (HttpRequestException ex)
        {
            throw new CredentialFetchException("token exchange endpoint unreachable (" + IssuerTransport.Reason(ex) + ")", isTransient: true);
        }

        using (response)
        {
            byte[] body;
            try
            {
                body = (await BoundedContent.ReadAsync(response.Content, MaxResponseBytes, timeout.Token).ConfigureAwait(false) ?? throw new CredentialFetchException("token exchange endpoint answer is larger than 256 KiB", isTransient: true));
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new CredentialFetchException("token exchange endpoint did not finish its answer within " + _settings.Timeout.TotalSeconds + " s", isTransient: true);
            }
            catch (HttpRequestException ex)
            {
                throw new CredentialFetchException("token exchange endpoint connection failed while reading the answer (" + ex.HttpRequestError + ")", isTransient: true);
            }

            var code = (int)response.StatusCode;
            if (code is < 200 or > 299)
            {
                var error = OAuth2TokenResponse.TryReadErrorCode(body, KnownErrorCodes);
                throw new CredentialFetchException(
                    "token exchange endpoint answered " + code + (error is null ? string.Empty : " (" + error + ")"),
                    isTransient: code is 408 or 429 or >= 500);
            }

            return ParseToken(body, requestedAt, username);
        }
    }

    /// <summary>RFC 8693 section 2.1, form-encoded (RFC 6749 appendix B), as Google's STS accepts too.</summary>
    private HttpRequestMessage BuildRequest(string subjectToken)
    {
        var form = new List<KeyValuePair<string, string>>(10)
        {
            new("grant_type", GrantType),
            new("subject_token", subjectToken),
            new("subject_token_type", _settings.SubjectTokenType),
        };
        if (_settings.Audience is not null)
        {
            form.Add(new("audience", _settings.Audience));
        }

        if (_settings.Scopes.Count > 0)
        {
            form.Add(new("scope", string.Join(' ', _settings.Scopes)));
        }

        if (_settings.Resource is not null)
        {
            form.Add(new("resource", _settings.Resource));
        }

        if (_settings.RequestedTokenType is not null)
        {
            form.Add(new("requested_token_type", _settings.RequestedTokenType));
        }

        if (_settings.ClientId is not null)
        {
            // A public client identifies itself (RFC 6749 section 3.2.1); it has nothing to authenticate with.
            form.Add(new("client_id", _settings.ClientId));
        }

        foreach (var (key, value) in _settings.Parameters)
        {
            form.Add(new(key, value));
        }

        var request = new HttpRequestMessage(HttpMethod.Post, _settings.TokenUrl) { Content = new FormUrlEncodedContent(form) };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        return request;
    }

    /// <summary>RFC 8693 section 2.2.1: access_token and issued_token_type, token_type, expires_in.</summary>
    private Credential ParseToken(byte[] body, DateTimeOffset requestedAt, string? username)
    {
        var response = OAuth2TokenResponse.Read(body, Endpoint);

        // issued_token_type is required by RFC 8693, but some servers omit it; when present it must be
        // what was asked for, or the injected value would be a different kind of token (an ID token, say).
        // The received value is not echoed: it is the server's text.
        if (_settings.RequestedTokenType is not null && response.IssuedTokenType is not null &&
            !string.Equals(response.IssuedTokenType, _settings.RequestedTokenType, StringComparison.Ordinal))
        {
            throw new CredentialFetchException(Endpoint + " issued a token of another type than RequestedTokenType", isTransient: false);
        }

        return response.ToCredential(Endpoint, _settings.DefaultLifetime, username, requestedAt);
    }

    /// <summary>The validated settings of one token exchange credential.</summary>
    public sealed record Settings(
        Uri TokenUrl,
        string SubjectTokenType,
        string? Audience,
        IReadOnlyList<string> Scopes,
        string? Resource,
        string? RequestedTokenType,
        string? ClientId,
        IReadOnlyDictionary<string, string> Parameters,
        TimeSpan DefaultLifetime,
        TimeSpan Timeout,
        int RetryAttempts,
        TimeSpan RetryDelay,
        string? Username,
        string? UsernameFile);
}
