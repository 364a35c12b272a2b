using System.Text.Json;
using Microsoft.IdentityModel.Tokens;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Identity;

/// <summary>
/// The issuer's public signing keys: a JWKS document fetched from the configured URL, or from the
/// <c>jwks_uri</c> of the issuer's OpenID discovery document (OpenID Connect Discovery 1.0
/// section 4). Parsed by hand with <see cref="JsonDocument"/> and <see cref="JsonWebKeySet"/>
/// rather than through IdentityModel's OpenIdConnect configuration manager, which brings
/// reflection-based serialization that Native AOT cannot keep.
/// </summary>
/// <remarks>
/// Not thread-safe: <see cref="TokenFileIdentity"/> calls it from its single refresh at a time.
/// Fetches are rate-limited so that a flood of tokens with unknown key ids, or an endpoint that is
/// down, cannot turn every refresh into a request to the issuer.
/// </remarks>
internal sealed partial class SigningKeySource
{
    private const int MaxResponseBytes = 512 * 1024;

    /// <summary>Keys are refetched after this age even when every kid is known, so a revoked key stops verifying.</summary>
    internal static readonly TimeSpan MaxKeyAge = TimeSpan.FromHours(1);

    /// <summary>A refetch for an unknown kid happens at most this often.</summary>
    internal static readonly TimeSpan MinRefetchInterval = TimeSpan.FromSeconds(30);

    /// <summary>After a failed fetch the next attempt waits this long, doubling up to <see cref="MaxFailureBackoff"/>.</summary>
    internal static readonly TimeSpan FirstFailureBackoff = TimeSpan.FromSeconds(5);

    internal static readonly TimeSpan MaxFailureBackoff = TimeSpan.FromSeconds(60);

    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly Uri? _jwksUrl;
    private readonly string? _issuer;
    private readonly TimeProvider _time;
    private readonly HttpMessageInvoker _http;
    private readonly ILogger _logger;

    private IReadOnlyList<SecurityKey> _keys = [];
    private string _keysFrom;
    private DateTimeOffset _fetchedAt;
    private DateTimeOffset _nextAttemptAt;
    private int _failures;
    private string? _lastError;

    /// <summary>Signing keys must come over https; plain http only from this host (a local issuer, tests).</summary>
    internal static bool IsTrustworthyKeyUrl(Uri url) =>
        url.Scheme == Uri.UriSchemeHttps || (url.Scheme == Uri.UriSchemeHttp && url.IsLoopback);

    public SigningKeySource(Uri? jwksUrl, string? issuer, TimeProvider time, HttpMessageInvoker http, ILogger logger)
    {
        if (jwksUrl is null && issuer is null)
        {
            throw new ArgumentException("either a JWKS URL or an issuer is required");
        }

        _jwksUrl = jwksUrl;
        _issuer = issuer;
        _time = time;
        _http = http;
        _logger = logger;
        _keysFrom = jwksUrl is not null ? Display(jwksUrl) : (issuer!.TrimEnd('/') + "/.well-known/openid-configuration");
    }

    /// <summary>The current keys (empty until a fetch succeeded).</summary>
    public IReadOnlyList<SecurityKey> Keys => _keys;

    /// <summary>Where the current keys came from (or will come from), without credentials or query: fit for messages.</summary>
    public string KeysFrom => _keysFrom;

    public bool HasKeys => _keys.Count > 0;

    public bool Contains(string kid)
    {
        foreach (var key in _keys)
        {
            if (string.Equals(key.KeyId, kid, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Makes sure there are keys to verify with: fetches when there are none, when they are older
    /// than <see cref="MaxKeyAge"/>, or when <paramref name="refresh"/> asks (an unknown kid) and the
    /// last fetch is at least <see cref="MinRefetchInterval"/> old. A failed fetch keeps the previous
    /// keys. Returns null when there are keys to use, otherwise why there are none.
    /// </summary>
    public async Task<string?> EnsureAsync(bool refresh, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var due = !HasKeys
            || now - _fetchedAt >= MaxKeyAge
            || (refresh && now - _fetchedAt >= MinRefetchInterval);
        if (!due || now < _nextAttemptAt)
        {
            return HasKeys ? null : _lastError;
        }

        var error = await FetchAsync(cancellationToken).ConfigureAwait(false);
        now = _time.GetUtcNow();
        if (error is null)
        {
            _failures = 0;
            _lastError = null;
            _fetchedAt = now;
            _nextAttemptAt = now;
            Log.KeysFetched(_logger, _keys.Count, _keysFrom);
            return null;
        }

        _failures++;
        var backoff = TimeSpan.FromTicks(Math.Min(MaxFailureBackoff.Ticks, FirstFailureBackoff.Ticks << Math.Min(_failures - 1, 10)));
        _nextAttemptAt = now + backoff;
        _lastError = error;
        Log.KeysFetchFailed(_logger, error, HasKeys, (long)backoff.TotalMilliseconds);
        return HasKeys ? null : error;
    }

    /// <summary>One fetch (discovery first when needed); replaces the keys on success, returns the reason on failure.</summary>
    private async Task<string?> FetchAsync(CancellationToken cancellationToken)
    {
        var jwksUrl = _jwksUrl;
        if (jwksUrl is null)
        {
            var discoveryText = _issuer!.TrimEnd('/') + "/.well-known/openid-configuration";
            if (!Uri.TryCreate(discoveryText, UriKind.Absolute, out var discoveryUrl) || (discoveryUrl.Scheme != Uri.UriSchemeHttps && discoveryUrl.Scheme != Uri.UriSchemeHttp))
            {
                return "could not fetch signing keys: issuer '" + _issuer + "' is not an http(s) URL, so its keys cannot be discovered; configure JwksUrl";
            }

            var (discovery, discoveryError) = await GetAsync(discoveryUrl, "application/json", cancellationToken).ConfigureAwait(false);
            if (discovery is null)
            {
                return "could not fetch signing keys from " + Display(discoveryUrl) + ": " + discoveryError;
            }

            var (found, parseError) = ParseDiscovery(discovery);
            if (found is null)
            {
                return "could not fetch signing keys from " + Display(discoveryUrl) + ": " + parseError;
            }

            jwksUrl = found;
        }

        var display = Display(jwksUrl);
        var (body, error) = await GetAsync(jwksUrl, "application/jwk-set+json, application/json", cancellationToken).ConfigureAwait(false);
        if (body is null)
        {
            return "could not fetch signing keys from " + display + ": " + error;
        }

        var (keys, keysError) = ParseKeys(body);
        if (keys is null)
        {
            return "could not fetch signing keys from " + display + ": " + keysError;
        }

        _keys = keys;
        _keysFrom = display;
        return null;
    }

    private async Task<(byte[]? Body, string? Error)> GetAsync(Uri url, string accept, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Accept.ParseAdd(accept);

        // Wall-clock on purpose: it bounds a network wait, not a token lifetime.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            using var response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is < 200 or > 299)
            {
                // The body is never echoed: an error page is not ours to repeat.
                return (null, "HTTP " + status);
            }

            var body = await BoundedContent.ReadAsync(response.Content, MaxResponseBytes, timeout.Token).ConfigureAwait(false);
            return body is null ? (null, "answer is larger than " + (MaxResponseBytes / 1024) + " KiB") : (body, null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, "no answer within " + Timeout.TotalSeconds + " s");
        }
        catch (HttpRequestException ex)
        {
            return (null, "request failed (" + IssuerTransport.Reason(ex) + ")");
        }
    }

    private (Uri? JwksUrl, string? Error) ParseDiscovery(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, "the discovery document is not a JSON object");
            }

            // OpenID Connect Discovery 1.0 section 4.3: the document's issuer must be the one it was fetched for.
            if (!doc.RootElement.TryGetProperty("issuer", out var issuer) || issuer.ValueKind != JsonValueKind.String || !issuer.ValueEquals(_issuer))
            {
                return (null, "the discovery document is not for the issuer '" + _issuer + "'");
            }

            if (!doc.RootElement.TryGetProperty("jwks_uri", out var jwks) || jwks.ValueKind != JsonValueKind.String)
            {
                return (null, "the discovery document has no jwks_uri");
            }

            if (!Uri.TryCreate(jwks.GetString(), UriKind.Absolute, out var url) || !IsTrustworthyKeyUrl(url))
            {
                // Keys fetched over plain HTTP from the network could be swapped in transit.
                return (null, "the discovery document's jwks_uri is not an https URL (http only for loopback)");
            }

            return (url, null);
        }
        catch (JsonException)
        {
            return (null, "the discovery document is not JSON");
        }
    }

    /// <summary>
    /// Only asymmetric signing keys are kept: a symmetric ("oct") key published in a JWKS would let
    /// anyone who can read the JWKS forge tokens, and "enc" keys are not for signatures.
    /// </summary>
    private static (IReadOnlyList<SecurityKey>? Keys, string? Error) ParseKeys(byte[] body)
    {
        JsonWebKeySet set;
        try
        {
            // Checked with JsonDocument first: JsonWebKeySet's own exceptions can quote the input.
            using (var doc = JsonDocument.Parse(body))
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("keys", out var array) || array.ValueKind != JsonValueKind.Array)
                {
                    return (null, "the answer is not a JSON Web Key Set (no \"keys\" array)");
                }
            }

            set = new JsonWebKeySet(System.Text.Encoding.UTF8.GetString(body));
        }
        catch (JsonException)
        {
            return (null, "the answer is not JSON");
        }
        catch (ArgumentException)
        {
            return (null, "the answer is not a valid JSON Web Key Set");
        }

        var keys = new List<SecurityKey>(set.Keys.Count);
        foreach (var key in set.Keys)
        {
            var asymmetric = key.Kty is JsonWebAlgorithmsKeyTypes.RSA or JsonWebAlgorithmsKeyTypes.EllipticCurve;
            var forSigning = key.Use is null || key.Use == JsonWebKeyUseNames.Sig;
            if (asymmetric && forSigning)
            {
                keys.Add(key);
            }
        }

        return keys.Count == 0 ? (null, "the key set has no RSA or EC signing keys") : (keys, null);
    }

    /// <summary>A URL as messages show it: no user info, no query (either could carry a secret).</summary>
    internal static string Display(Uri url) =>
        url.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped);

    private static partial class Log
    {
        [LoggerMessage(EventIds.IdentityKeysFetched, LogLevel.Information, "Fetched {KeyCount} identity token signing key(s) from {KeysUrl}")]
        public static partial void KeysFetched(ILogger logger, int keyCount, string keysUrl);

        [LoggerMessage(EventIds.IdentityKeysFetchFailed, LogLevel.Warning, "{Reason} (keeping previous keys: {HasPreviousKeys}); next attempt in {BackoffMs} ms at the earliest")]
        public static partial void KeysFetchFailed(ILogger logger, string reason, bool hasPreviousKeys, long backoffMs);
    }
}
