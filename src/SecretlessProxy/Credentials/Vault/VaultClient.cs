using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// The HTTP side of the Vault source: one call to Vault's API with a wall-clock timeout and a
/// bounded answer. Vault's error bodies (<c>{"errors":[...]}</c>) may repeat what was submitted
/// (a role name, a claim, a path), so they are never read: <see cref="Failure"/> maps the status
/// code to a fixed reason.
/// </summary>
internal sealed class VaultClient
{
    private const int MaxResponseBytes = 256 * 1024;

    private readonly Uri _api;
    private readonly HttpMessageInvoker _shared;
    private readonly string? _caFile;
    private readonly IssuerEndpoint? _endpoint;
    private readonly TimeSpan _timeout;
    private HttpMessageInvoker? _own;

    /// <param name="sharedClient">The proxy's token-endpoint client, used unless <paramref name="caFile"/> asks for extra trust or <paramref name="endpoint"/> for a transport of its own.</param>
    public VaultClient(Uri address, HttpMessageInvoker sharedClient, string? caFile, TimeSpan timeout, IssuerEndpoint? endpoint = null)
    {
        _endpoint = endpoint;
        // Address may carry a path prefix (Vault behind a path-routing gateway); the API lives under it.
        var baseText = address.GetLeftPart(UriPartial.Path).TrimEnd('/');
        _api = new Uri(baseText + "/v1/");
        _shared = sharedClient;
        _caFile = caFile;
        _timeout = timeout;
    }

    public string Host => _api.Authority;

    /// <summary>
    /// Sends one request. Network failures and timeouts throw a transient
    /// <see cref="CredentialFetchException"/>; any status is returned for the caller to judge.
    /// </summary>
    /// <param name="apiPath">Below <c>/v1/</c>, already escaped.</param>
    /// <param name="body">Writes the JSON body; null for none.</param>
    public async Task<Reply> SendAsync(HttpMethod method, string apiPath, Action<Utf8JsonWriter>? body, string? vaultToken, string action, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(_api, apiPath));
        // Vault Agent and listeners with require_request_header refuse requests without it (a
        // guard against browsers being used for SSRF); Vault's own CLI always sends it.
        request.Headers.TryAddWithoutValidation("X-Vault-Request", "true");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (vaultToken is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Vault-Token", vaultToken);
        }

        if (body is not null)
        {
            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                body(writer);
                writer.WriteEndObject();
            }

            request.Content = new ByteArrayContent(buffer.ToArray());
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        // The timeout is wall-clock on purpose: it bounds a network wait, not a credential lifetime.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        try
        {
            using var response = await Client().SendAsync(request, timeout.Token).ConfigureAwait(false);
            var bytes = (await BoundedContent.ReadAsync(response.Content, MaxResponseBytes, timeout.Token).ConfigureAwait(false) ?? throw new CredentialFetchException(Prefix(action) + "the answer is larger than 256 KiB", isTransient: true));
            return new Reply((int)response.StatusCode, bytes);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CredentialFetchException(Prefix(action) + "no answer within " + _timeout.TotalSeconds + " s", isTransient: true);
        }
        catch (HttpRequestException ex)
        {
            // A TLS failure says so, without the certificate details (they are not secret, but the
            // fix is the same whatever they say: CaFile or the server's certificate).
            var what = ex.HttpRequestError == HttpRequestError.SecureConnectionError
                ? "TLS handshake failed; check " + (_endpoint is { PinnedCertificates.Count: > 0 } ? "PinnedCertificateSha256" : "CaFile") + " and Vault's certificate"
                : IssuerTransport.Reason(ex);
            throw new CredentialFetchException(Prefix(action) + "unreachable (" + what + ")", isTransient: true);
        }
    }

    /// <summary>
    /// A fixed reason for a non-2xx status. 400 and 403 are Vault rejecting what was asked (not
    /// retried); 429, 5xx and 503 (sealed, or a standby without forwarding) are worth retrying.
    /// </summary>
    public CredentialFetchException Failure(int status, string action, string? hint = null)
    {
        var (reason, transient) = status switch
        {
            400 => ("rejected (400)", false),
            401 or 403 => ("permission denied (" + status + ")", false),
            404 => ("not found (404)", false),
            405 => ("method not supported there (405)", false),
            >= 300 and < 400 => ("redirected (" + status + "); point Address at the active node or its load balancer", false),
            412 => ("not yet consistent (412)", true),
            429 => ("rate limited (429)", true),
            503 => ("sealed or unavailable (503)", true),
            >= 500 => ("server error (" + status + ")", true),
            _ => ("answered " + status, false),
        };
        return new CredentialFetchException(Prefix(action) + reason + (hint is null ? string.Empty : "; " + hint), transient);
    }

    /// <summary>"Vault at host, reading secret/payments/api: ", the start of every failure message.</summary>
    public string Prefix(string action) => "Vault at " + Host + ", " + action + ": ";

    /// <summary>Parses a 2xx answer; Vault answers every API call with a JSON object.</summary>
    public JsonDocument Parse(Reply reply, string action)
    {
        try
        {
            var document = JsonDocument.Parse(reply.Body);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                document.Dispose();
                throw new CredentialFetchException(Prefix(action) + "the answer is JSON but not an object", isTransient: true);
            }

            return document;
        }
        catch (JsonException)
        {
            throw new CredentialFetchException(Prefix(action) + "the answer is not JSON", isTransient: true);
        }
    }

    private HttpMessageInvoker Client()
    {
        if (_caFile is null && _endpoint is not { NeedsOwnTransport: true })
        {
            return _shared;
        }

        var own = Volatile.Read(ref _own);
        if (own is null)
        {
            var created = CreateClient(_caFile, _endpoint);
            own = Interlocked.CompareExchange(ref _own, created, null) ?? created;
            if (!ReferenceEquals(own, created))
            {
                created.Dispose();
            }
        }

        return own;
    }

    /// <summary>
    /// The issuer transport (no redirects, no environment proxy, no cookies; a Unix socket or a
    /// pinned certificate when configured) plus Vault's CA as extra trust. Made on first use, so a
    /// config that is validated or superseded by a reload before it ever fetches opens nothing.
    /// </summary>
    private static HttpMessageInvoker CreateClient(string? caFile, IssuerEndpoint? endpoint)
    {
        X509Certificate2Collection? trust = null;
        if (caFile is not null)
        {
            trust = [];
            try
            {
                trust.ImportFromPemFile(caFile);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                throw new CredentialFetchException("CaFile '" + caFile + "' could not be loaded (" + ex.GetType().Name + ")", isTransient: false);
            }

            if (trust.Count == 0)
            {
                throw new CredentialFetchException("CaFile '" + caFile + "' holds no PEM certificate", isTransient: false);
            }
        }

        return new HttpMessageInvoker(IssuerTransport.CreateHandler(endpoint, trust));
    }

    /// <summary>A status and the raw answer; the body may hold a secret and is never printed.</summary>
    public readonly record struct Reply(int Status, byte[] Body)
    {
        public bool IsSuccess => Status is >= 200 and <= 299;

        public override string ToString() => "Reply(" + Status + ")";
    }
}
