using System.Collections.Frozen;
using Amazon;
using Amazon.Runtime;
using Amazon.SecurityToken;
using Amazon.SecurityToken.Model;
using Polly;
using SecretlessProxy.Core;
using SecretlessProxy.Identity;

namespace SecretlessProxy.Credentials;

/// <summary>
/// Temporary AWS keys from STS <c>AssumeRoleWithWebIdentity</c>, with the workload's identity token
/// as the web identity: no AWS secret exists anywhere before the call. The SDK client is built in
/// code (anonymous credentials, endpoint, no retries of its own, our transport), so it never reads
/// <c>~/.aws</c>, environment endpoint overrides or instance metadata, and its answers are reduced
/// to safe messages: a fixed vocabulary of STS error codes, never the service's free-text message.
/// </summary>
internal sealed class AwsWebIdentityCredentialSource : ICredentialSource
{

    private readonly AwsWebIdentitySettings _options;
    private readonly TimeProvider _time;
    private readonly WorkloadIdentityAccessor _identity;
    private readonly ResiliencePipeline _retry;
    private readonly AmazonSecurityTokenServiceClient _sts;

    /// <param name="http">The proxy's client for identity providers; STS calls go through it.</param>
    public AwsWebIdentityCredentialSource(AwsWebIdentitySettings options, HttpMessageInvoker http, TimeProvider time, WorkloadIdentityAccessor identity)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(http);
        _options = options;
        _time = time;
        _identity = identity;
        _sts = new AmazonSecurityTokenServiceClient(new AnonymousAWSCredentials(), CreateConfig(options, http));

        _retry = FetchRetry.Create(time, options.RetryAttempts, options.RetryDelay);
    }

    public string Kind => "AwsWebIdentity";

    public CredentialSourceDescription Describe() => new(
        "AWS STS " + (_options.Region ?? CredentialSourceDescription.Authority(_options.StsUrl!)) + ", role " + _options.RoleArn,
        "AssumeRoleWithWebIdentity again at RefreshAt of the session's lifetime",
        "the session's Expiration as STS answers (DurationSeconds " + (int)_options.Duration.TotalSeconds + " asked)",
        CredentialSourceDescription.DropCacheOnly + " (STS has no per-session revocation: deny it in the role's policy)");

    public async Task<Credential> FetchAsync(CancellationToken cancellationToken) =>
        await _retry.ExecuteAsync(static (self, ct) => new ValueTask<Credential>(self.FetchOnceAsync(ct)), this, cancellationToken).ConfigureAwait(false);

    /// <summary>The STS URL requests go to (the regional endpoint unless <c>StsUrl</c> is given).</summary>
    internal Uri ResolveEndpoint() =>
        new(_sts.DetermineServiceOperationEndpoint(new AssumeRoleWithWebIdentityRequest { RoleArn = _options.RoleArn }).URL);

    private async Task<Credential> FetchOnceAsync(CancellationToken cancellationToken)
    {
        var identity = await _identity.GetAsync(cancellationToken).ConfigureAwait(false);
        if (identity.Identity is null)
        {
            // Not retried within this fetch: the cache's backoff asks again, by when a rotated token may be there.
            throw new CredentialFetchException("no valid workload identity to present to STS: " + identity.FailureReason, isTransient: false);
        }

        var request = new AssumeRoleWithWebIdentityRequest
        {
            RoleArn = _options.RoleArn,
            RoleSessionName = _options.RoleSessionName,
            WebIdentityToken = identity.Identity.Token,
            DurationSeconds = (int)_options.Duration.TotalSeconds,
        };

        var requestedAt = _time.GetUtcNow();

        // The timeout is wall-clock on purpose: it bounds a network wait, not a credential lifetime.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);

        AssumeRoleWithWebIdentityResponse response;
        try
        {
            response = await _sts.AssumeRoleWithWebIdentityAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CredentialFetchException("STS did not answer within " + _options.Timeout.TotalSeconds + " s", isTransient: true);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Our own transport's verdict (an answer over the size bound) may come back wrapped by the
            // SDK: keep its message and transience rather than calling it a failed STS call.
            for (var inner = ex; inner is not null; inner = inner.InnerException)
            {
                if (inner is CredentialFetchException own)
                {
                    throw new CredentialFetchException(own.Message, own.IsTransient);
                }
            }

            throw Describe(ex);
        }

        return ToCredential(response, requestedAt);
    }

    private static Credential ToCredential(AssumeRoleWithWebIdentityResponse response, DateTimeOffset requestedAt)
    {
        var keys = response.Credentials;
        if (keys is null || string.IsNullOrEmpty(keys.AccessKeyId) || string.IsNullOrEmpty(keys.SecretAccessKey) || string.IsNullOrEmpty(keys.SessionToken))
        {
            throw new CredentialFetchException("STS answer has no complete Credentials (AccessKeyId, SecretAccessKey, SessionToken)", isTransient: true);
        }

        if (keys.Expiration is not { } expiration)
        {
            throw new CredentialFetchException("STS answer has no Expiration for the temporary keys", isTransient: true);
        }

        // The keys are signed into every request's Authorization header and the session token sent as
        // X-Amz-Security-Token: values with control characters could split a header.
        SecretFileReader.EnsurePrintable(keys.AccessKeyId, "the access key id");
        SecretFileReader.EnsurePrintable(keys.SecretAccessKey, "the secret access key");
        SecretFileReader.EnsurePrintable(keys.SessionToken, "the session token");

        // The SDK parses the ISO 8601 timestamp into a UTC or local DateTime; an unspecified kind is UTC.
        var expiresAt = expiration.Kind == DateTimeKind.Unspecified
            ? new DateTimeOffset(DateTime.SpecifyKind(expiration, DateTimeKind.Utc))
            : new DateTimeOffset(expiration.ToUniversalTime());
        // The keys live only in SigningKeys, for the signer; the plain secret slot holds a
        // marker, so no bearer-style injector could ever put the secret access key on the wire.
        return new Credential(
            "aws-sigv4-keys",
            username: null,
            requestedAt,
            expiresAt,
            signingKeys: new SigningKeys(keys.AccessKeyId, keys.SecretAccessKey, keys.SessionToken));
    }

    /// <summary>
    /// An SDK failure as a safe message. The service's <c>Message</c> is free text that an endpoint
    /// (or something posing as one) could fill with the submitted token, so only the HTTP status and
    /// an error code from the fixed STS vocabulary are reported.
    /// </summary>
    private static CredentialFetchException Describe(Exception ex)
    {
        switch (ex)
        {
            case CredentialFetchException fetch:
                return fetch;

            case AmazonUnmarshallingException unreadable:
                // A body that is not an STS answer: a proxy's error page, a truncated response.
                return new CredentialFetchException(
                    "STS answered " + (unreadable.StatusCode == 0 ? string.Empty : (int)unreadable.StatusCode + " with ") + "something that is not an STS XML response",
                    isTransient: true);

            case AmazonServiceException service when service.StatusCode != 0 || service.ErrorCode is not null:
            {
                var status = (int)service.StatusCode;
                var code = service.ErrorCode is { } c && KnownErrorCodes.TryGetValue(c, out var known) ? known : null;
                var transient = status is 408 or 429 or >= 500 || (code is not null && TransientErrorCodes.Contains(code));
                return new CredentialFetchException(
                    "STS answered " + (status == 0 ? "an error" : status.ToString(System.Globalization.CultureInfo.InvariantCulture)) +
                    (code is null ? string.Empty : " (" + code + ")") + Hint(code),
                    transient);
            }

            default:
                // Transport failures arrive bare or wrapped by the SDK.
                for (var inner = ex; inner is not null; inner = inner.InnerException)
                {
                    if (inner is HttpRequestException http)
                    {
                        return new CredentialFetchException("STS unreachable (" + IssuerTransport.Reason(http) + ")", isTransient: true);
                    }

                    if (inner is System.Xml.XmlException)
                    {
                        // The SDK's parser stops at malformed XML; its message quotes the document.
                        return new CredentialFetchException("STS answered something that is not well-formed XML", isTransient: true);
                    }

                    if (inner is IOException or System.Net.Sockets.SocketException)
                    {
                        return new CredentialFetchException("STS connection failed (" + inner.GetType().Name + ")", isTransient: true);
                    }
                }

                return new CredentialFetchException("STS call failed (" + ex.GetType().Name + ")", isTransient: false);
        }
    }

    private static string Hint(string? code) => code switch
    {
        "InvalidIdentityToken" => ": STS rejected the workload token (check the role's trust policy and the identity provider registered in IAM)",
        "ExpiredTokenException" or "ExpiredToken" => ": the workload token had expired when STS checked it",
        "AccessDenied" => ": the role's trust policy does not allow this workload",
        "IDPRejectedClaim" => ": the identity provider rejected a claim of the workload token",
        "IDPCommunicationError" => ": STS could not reach the identity provider to verify the workload token",
        _ => string.Empty,
    };

    // Only codes STS (and the AWS query protocol's common errors) define are echoed: a free-form
    // value could be anything. The lookup returns the canonical spelling.
    private static readonly FrozenDictionary<string, string> KnownErrorCodes = new[]
    {
        "InvalidIdentityToken", "ExpiredTokenException", "ExpiredToken", "IDPRejectedClaim", "IDPCommunicationError",
        "MalformedPolicyDocument", "PackedPolicyTooLarge", "RegionDisabledException", "AccessDenied", "AccessDeniedException",
        "ValidationError", "InvalidParameterValue", "InvalidParameterCombination", "MissingParameter", "InvalidAction",
        "InvalidClientTokenId", "NotAuthorized", "OptInRequired", "RequestExpired", "Throttling", "ThrottlingException",
        "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure", "InternalError",
    }.ToFrozenDictionary(c => c, c => c, StringComparer.OrdinalIgnoreCase);

    // 400-class answers that are still worth another try (AWS documents these as retryable).
    private static readonly FrozenSet<string> TransientErrorCodes = new[]
    {
        "IDPCommunicationError", "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure", "InternalError",
    }.ToFrozenSet(StringComparer.Ordinal);

    private static AmazonSecurityTokenServiceConfig CreateConfig(AwsWebIdentitySettings options, HttpMessageInvoker http)
    {
        // Every setting the SDK would otherwise look up in AWS_* variables or the shared config file
        // is set here, so the proxy's behaviour depends on its own configuration only.
        var config = new AmazonSecurityTokenServiceConfig
        {
            IgnoreConfiguredEndpointUrls = true,
            UseFIPSEndpoint = false,
            UseDualstackEndpoint = false,
            DefaultConfigurationMode = DefaultConfigurationMode.Standard,
            RetryMode = RequestRetryMode.Standard,

            // Retries belong to our pipeline (transient failures within a fetch) and the cache's
            // backoff (between fetches); the SDK's would multiply them and outlast our timeout.
            MaxErrorRetry = 0,
            ThrottleRetries = false,
            DisableClockSkewCorrection = true,
            EndpointDiscoveryEnabled = false,
            DisableRequestCompression = true,
            AccountIdEndpointMode = AccountIdEndpointMode.DISABLED,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            ClientAppId = "secretless-proxy",
            AllowAutoRedirect = false,
            DisableLogging = true,
            HttpClientFactory = new InvokerHttpClientFactory(http),
        };

        if (options.StsUrl is { } url)
        {
            config.ServiceURL = url.ToString();
            if (options.Region is not null)
            {
                config.AuthenticationRegion = options.Region;
            }
        }
        else
        {
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(options.Region);
        }

        return config;
    }

    /// <summary>Hands the SDK an <see cref="HttpClient"/> over the proxy's own transport.</summary>
    private sealed class InvokerHttpClientFactory(HttpMessageInvoker invoker) : HttpClientFactory
    {
        public override HttpClient CreateHttpClient(IClientConfig clientConfig) =>
            // The handler is shared and outlives the SDK's clients; timeouts come from our token.
            new(new BoundedInvokerHandler(invoker, "STS"), disposeHandler: false) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };

        public override bool DisposeHttpClientsAfterUse(IClientConfig clientConfig) => false;
    }

}
