using System.Buffers;
using System.Globalization;
using System.Text;
using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.Signing;
using SecretlessProxy.Core;

namespace SecretlessProxy.Injection;

/// <summary>
/// Signs the outgoing request with AWS Signature Version 4 using the credential's temporary keys,
/// through AWSSDK.Core's <see cref="AWSSigV4Signer"/>. Whatever the app sent as a signature
/// (<c>Authorization</c>, <c>X-Amz-Date</c>, <c>X-Amz-Security-Token</c>,
/// <c>X-Amz-Content-Sha256</c>) is removed first.
/// </summary>
/// <remarks>
/// <para>Signed headers are <c>host</c>, <c>content-type</c>, <c>content-md5</c> and the
/// <c>x-amz-*</c> headers on <see cref="AwsSignedHeaders"/>' allow-list; any other <c>x-amz-*</c> header
/// is removed (S3 rejects an unsigned one, and the signature must cover only what policy reviewed).
/// Nothing the transport may add or rewrite afterwards is signed (<c>traceparent</c>,
/// <c>tracestate</c> and <c>baggage</c> are set by the HTTP client's diagnostics after this runs).
/// A source object header (<c>x-amz-copy-source</c>) is signed only after
/// <see cref="RefuseRequest"/> found it inside the policy's path prefix.</para>
/// <para>The body is never buffered without bound: S3 gets <c>UNSIGNED-PAYLOAD</c> by default (the
/// body streams through); a signed payload is read up to <see cref="MaxBodyBytes"/>, within the
/// process-wide <see cref="SigningBufferBudget"/>, hashed as it is read and sent from that buffer
/// (<see cref="SignedBody"/>). A larger one fails with <see cref="PayloadTooLargeException"/>, one
/// the budget cannot hold with <see cref="SigningBufferRefusedException"/>, before anything is
/// sent.</para>
/// <para>The query string is rewritten to its canonical encoding (RFC 3986 unreserved characters
/// kept, everything else percent-encoded as UTF-8, <c>+</c> read as a space) so the bytes on the wire
/// are the ones the signature covers, whichever way the service re-canonicalizes them.</para>
/// </remarks>
internal sealed class AwsSigV4Injector : HttpRequestInjector
{
    public const long DefaultMaxBodyBytes = 10 * 1024 * 1024;

    private const string ContentSha256 = "x-amz-content-sha256";
    private const string UnsignedPayload = "UNSIGNED-PAYLOAD";

    /// <summary>SHA-256 of no bytes: the payload hash of a request without a body.</summary>
    private const string EmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    private static readonly string[] AppSignatureHeaders = ["Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"];

    private static readonly SearchValues<char> Unreserved = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~");

    private readonly TimeProvider _time;

    /// <param name="service">Signing name; null to infer it from each request's host.</param>
    /// <param name="region">Signing region; null to infer it from each request's host.</param>
    /// <param name="signPayload">Null: false for the S3 family, true for every other service.</param>
    /// <param name="pathStyle">The upstream takes the bucket as the first path segment, so a copy source is checked as <c>/bucket/key</c> whatever its host name.</param>
    public AwsSigV4Injector(string? service, string? region, bool? signPayload, long maxBodyBytes, TimeProvider time, bool pathStyle = false)
    {
        PathStyle = pathStyle;
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBodyBytes);
        Service = service;
        Region = region;
        SignPayload = signPayload;
        MaxBodyBytes = maxBodyBytes;
        _time = time;
    }

    public string? Service { get; }

    public string? Region { get; }

    public bool? SignPayload { get; }

    public long MaxBodyBytes { get; }

    public bool PathStyle { get; }

    public override string Kind => "aws-sigv4";

    /// <summary>S3 and its variants accept <c>UNSIGNED-PAYLOAD</c> and decode the path before signing it.</summary>
    public static bool IsS3Family(string service) =>
        service is "s3" or "s3express" or "s3-object-lambda" or "s3-outposts";

    /// <summary>Whether an exception, or one it wraps, is the signer refusing an oversized body.</summary>
    public static bool IsPayloadTooLarge(Exception? exception) => ExceptionChain.Find<PayloadTooLargeException>(exception) is not null;

    /// <summary>
    /// Refuses a request whose source object header (<c>x-amz-copy-source</c>,
    /// <c>x-amz-rename-source</c>) names an object outside <paramref name="pathPrefix"/>, or is
    /// ambiguous, repeated, or smuggled in as a query parameter: the signature would let the service
    /// read that object with the credential although policy only matched the request's own path.
    /// </summary>
    public override string? RefuseRequest(HttpRequest request, in RequestDestination destination, string pathPrefix)
    {
        ArgumentNullException.ThrowIfNull(request);
        foreach (var name in AwsSignedHeaders.SourceHeaders)
        {
            var values = request.Headers[name];
            if (values.Count == 0)
            {
                continue;
            }

            if (values.Count > 1)
            {
                return name + " is given more than once";
            }

            if (AwsSourceCheck.Refuse(name, values[0] ?? string.Empty, destination.Host, pathPrefix, PathStyle) is { } reason)
            {
                return reason;
            }
        }

        if (request.QueryString.HasValue)
        {
            foreach (var key in request.Query.Keys)
            {
                foreach (var name in AwsSignedHeaders.SourceHeaders)
                {
                    // S3 reads some x-amz-* request headers from the query too (presigned URLs).
                    if (key.StartsWith(name, StringComparison.OrdinalIgnoreCase))
                    {
                        return "the query parameter " + name + " names another object: refused (send it as a header)";
                    }
                }
            }
        }

        return null;
    }

    public override void Apply(HttpRequestMessage proxyRequest, Credential credential) =>
        throw new NotSupportedException("SigV4 signing may read the body: use ApplyAsync.");

    public override async ValueTask ApplyAsync(HttpRequestMessage proxyRequest, Credential credential, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(proxyRequest);
        ArgumentNullException.ThrowIfNull(credential);
        var keys = credential.SigningKeys ?? throw new InvalidOperationException("SigV4 signing needs temporary AWS keys; this credential has none.");
        var uri = proxyRequest.RequestUri ?? throw new InvalidOperationException("The outgoing request has no URI.");

        var service = Service;
        var region = Region;
        if (service is null || region is null)
        {
            if (!AwsHostNames.TryInfer(uri.Host, out var inferredService, out var inferredRegion))
            {
                throw new InvalidOperationException("cannot infer the SigV4 service and region from host '" + uri.Host + "'");
            }

            service ??= inferredService;
            region ??= inferredRegion;
        }

        foreach (var name in AppSignatureHeaders)
        {
            RemoveRequestHeader(proxyRequest, name);
        }

        uri = WithCanonicalQuery(uri);
        proxyRequest.RequestUri = uri;

        var signPayload = SignPayload ?? !IsS3Family(service);
        var signing = new AWSSigningRequest { HttpMethod = proxyRequest.Method, RequestUri = uri };
        signing.Headers["host"] = proxyRequest.Headers.Host ?? uri.Authority;
        CollectSignedHeaders(proxyRequest.Headers, signing.Headers);
        if (proxyRequest.Content is { } content)
        {
            CollectSignedHeaders(content.Headers, signing.Headers);
        }

        if (signPayload)
        {
            // The hash computed while the body was read, supplied to the signer, which then signs it
            // verbatim without reading the body a second time.
            var payloadHash = await BufferBodyAsync(proxyRequest, cancellationToken).ConfigureAwait(false);
            signing.Headers[ContentSha256] = payloadHash;
            proxyRequest.Headers.TryAddWithoutValidation(ContentSha256, payloadHash);
        }
        else
        {
            // UNSIGNED-PAYLOAD given as the content hash: the body is not read. (The signer refuses
            // SignPayload=false over http; S3-compatible upstreams on http, such as a local MinIO, are
            // the operator's choice, and the canonical request is the same either way.)
            signing.Headers[ContentSha256] = UnsignedPayload;
            proxyRequest.Headers.TryAddWithoutValidation(ContentSha256, UnsignedPayload);
        }

        AWSCredentials awsCredentials = keys.SessionToken is { Length: > 0 } token
            ? new SessionAWSCredentials(keys.AccessKeyId, keys.SecretAccessKey, token)
            : new BasicAWSCredentials(keys.AccessKeyId, keys.SecretAccessKey);
        var parameters = new AWSSigV4Parameters
        {
            Credentials = awsCredentials,
            Region = RegionEndpoint.GetBySystemName(region),
            Service = service,
            // True in both modes: the signer then hashes Content, or takes a supplied
            // x-amz-content-sha256 (UNSIGNED-PAYLOAD) verbatim without reading any body.
            SignPayload = true,
            // The injected clock, so tests pin X-Amz-Date and the proxy's time is the one used everywhere.
            SignedAt = _time.GetUtcNow().UtcDateTime,
        };

        var result = AWSSigV4Signer.Sign(signing, parameters);
        foreach (var (name, value) in result.Headers)
        {
            RemoveRequestHeader(proxyRequest, name);
            proxyRequest.Headers.TryAddWithoutValidation(name, value);
        }
    }

    /// <summary>
    /// Only the session token, which goes on the wire as <c>X-Amz-Security-Token</c> and is a bearer
    /// credential for the session (S3's <c>SignatureDoesNotMatch</c> error shows it in its
    /// <c>CanonicalRequest</c>). The secret access key is never sent, only a signature derived from
    /// it, which is valid for that one request; the access key id is not secret.
    /// </summary>
    internal override IEnumerable<string> WireForms(Credential credential) =>
        credential.SigningKeys?.SessionToken is { Length: > 0 } token ? [token] : [];

    /// <summary>
    /// Removes a request header wherever the forwarder put it: a name such as <c>Authorization</c>
    /// cannot be asked of content headers (it throws), but an unknown <c>X-Amz-*</c> may sit there.
    /// </summary>
    private static void RemoveRequestHeader(HttpRequestMessage request, string name)
    {
        request.Headers.Remove(name);
        if (request.Content is { } content && content.Headers.NonValidated.Contains(name))
        {
            content.Headers.Remove(name);
        }
    }

    /// <summary>
    /// Adds the headers to sign, each as the single value that goes on the wire: a header with
    /// several values is collapsed to one comma-joined line first, so what is signed is exactly what
    /// is sent (SigV4 canonical headers: trimmed, inner runs of spaces kept to one by the signer).
    /// </summary>
    private static void CollectSignedHeaders(System.Net.Http.Headers.HttpHeaders headers, IDictionary<string, string> signed)
    {
        List<(string Name, string Value)>? collapsed = null;
        List<string>? dropped = null;
        foreach (var (name, values) in headers.NonValidated)
        {
            if (AwsSignedHeaders.IsDropped(name))
            {
                (dropped ??= []).Add(name);
                continue;
            }

            if (!AwsSignedHeaders.IsSigned(name))
            {
                continue;
            }

            string value;
            if (values.Count == 1)
            {
                value = values.ToString();
            }
            else
            {
                var parts = new string[values.Count];
                var i = 0;
                foreach (var v in values)
                {
                    parts[i++] = v.Trim();
                }

                value = string.Join(',', parts);
                (collapsed ??= []).Add((name, value));
            }

            signed[name.ToLowerInvariant()] = value.Trim();
        }

        if (dropped is not null)
        {
            foreach (var name in dropped)
            {
                headers.Remove(name);
            }
        }

        if (collapsed is not null)
        {
            foreach (var (name, value) in collapsed)
            {
                headers.Remove(name);
                headers.TryAddWithoutValidation(name, value);
            }
        }
    }

    /// <summary>
    /// Reads the body once, hashing it as it arrives, into memory reserved from the request's
    /// <see cref="SigningBufferScope"/>, and makes that memory the request's content (the original
    /// stream can be read once only). Returns the body's SHA-256 as hex.
    /// </summary>
    private async Task<string> BufferBodyAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var content = request.Content;
        if (content is null)
        {
            return EmptySha256;
        }

        // The proxy always hands over its scope; used on its own (tests, tools) only MaxBodyBytes bounds the body.
        request.Options.TryGetValue(SigningBufferScope.OptionsKey, out var scope);
        var budget = scope?.Budget ?? new SigningBufferBudget(Math.Max(1, MaxBodyBytes));
        var body = await SignedBody.ReadAsync(content, MaxBodyBytes, budget, cancellationToken).ConfigureAwait(false);
        scope?.Hold(body);
        request.Content = body;
        content.Dispose();
        return body.Sha256Hex;
    }

    /// <summary>Rewrites the query to SigV4's canonical encoding, keeping the parameters' order.</summary>
    private static Uri WithCanonicalQuery(Uri uri)
    {
        var query = uri.Query;
        if (query.Length <= 1)
        {
            return uri;
        }

        var builder = new StringBuilder(query.Length + 16);
        foreach (var range in query.AsSpan(1).Split('&'))
        {
            var pair = query.AsSpan(1)[range];
            if (pair.IsEmpty)
            {
                continue;
            }

            if (builder.Length > 0)
            {
                builder.Append('&');
            }

            var eq = pair.IndexOf('=');
            AppendEncoded(builder, Decode(eq < 0 ? pair : pair[..eq]));
            if (eq >= 0)
            {
                builder.Append('=');
                AppendEncoded(builder, Decode(pair[(eq + 1)..]));
            }
        }

        var canonical = builder.ToString();
        if (canonical.Length == query.Length - 1 && query.AsSpan(1).SequenceEqual(canonical))
        {
            return uri;
        }

        return new UriBuilder(uri) { Query = canonical }.Uri;
    }

    private static string Decode(ReadOnlySpan<char> value) => Uri.UnescapeDataString(value.ToString().Replace('+', ' '));

    /// <summary>RFC 3986 section 2.3 unreserved characters stay; every other UTF-8 byte becomes %XX (upper case).</summary>
    private static void AppendEncoded(StringBuilder builder, string value)
    {
        Span<byte> utf8 = stackalloc byte[4];
        var rest = value.AsSpan();
        while (!rest.IsEmpty)
        {
            var plain = rest.IndexOfAnyExcept(Unreserved);
            if (plain < 0)
            {
                builder.Append(rest);
                return;
            }

            builder.Append(rest[..plain]);
            rest = rest[plain..];
            Rune.DecodeFromUtf16(rest, out var rune, out var consumed);
            var written = rune.EncodeToUtf8(utf8);
            for (var i = 0; i < written; i++)
            {
                builder.Append('%').Append(utf8[i].ToString("X2", CultureInfo.InvariantCulture));
            }

            rest = rest[consumed..];
        }
    }
}

/// <summary>The body to sign is larger than <c>MaxBodyBytes</c>: the request is refused with 413, never sent.</summary>
internal sealed class PayloadTooLargeException : Exception
{
    public PayloadTooLargeException(long limit)
        : base("the request body is larger than " + limit.ToString(CultureInfo.InvariantCulture) + " bytes, the most that is buffered to sign it")
    {
        Limit = limit;
    }

    public long Limit { get; }
}
