using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using SecretlessProxy.Identity.Spiffe.WorkloadApi;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A SPIFFE Workload API server as a SPIRE agent serves it: gRPC (Grpc.AspNetCore, HTTP/2) on a Unix
/// socket in a temp folder, refusing every call without the <c>workload.spiffe.io: true</c>
/// metadata (InvalidArgument, as SPIRE does). It issues JWT-SVIDs signed by its own JWT authority
/// (ES256) for any audience, and X.509-SVIDs from a test CA, streamed: <see cref="RotateX509"/>
/// sends a new SVID to every open FetchX509SVID stream. <see cref="StopAsync"/> and
/// <see cref="StartAsync()"/> take the agent away and bring it back on the same socket.
/// </summary>
public sealed class FakeWorkloadApi : IAsyncDisposable
{
    public const string TrustDomain = "example.org";
    public const string TrustDomainId = "spiffe://" + TrustDomain;

    private readonly string _directory;
    private readonly ECDsa _jwtKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private X509Certificate2? _intermediate;
    private readonly string _kid = "jwt-authority-" + Guid.NewGuid().ToString("N")[..8];
    private readonly object _gate = new();
    private WebApplication? _app;
    private X509Material _x509;
    private TaskCompletionSource _rotated = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public FakeWorkloadApi(TimeProvider time, string spiffeId = TrustDomainId + "/ns/payments/sa/api")
    {
        Time = time;
        SpiffeId = spiffeId;
        _directory = Directory.CreateTempSubdirectory("spiffe-").FullName;
        SocketPath = Path.Combine(_directory, "agent.sock");
        var request = new CertificateRequest("CN=Fake SPIRE CA, O=" + TrustDomain, _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var san = new SubjectAlternativeNameBuilder();
        san.AddUri(new Uri(TrustDomainId));
        request.CertificateExtensions.Add(san.Build());
        Ca = request.CreateSelfSigned(time.GetUtcNow().AddDays(-2), time.GetUtcNow().AddDays(30));
        _x509 = IssueX509(spiffeId, TimeSpan.FromHours(1));
    }

    public TimeProvider Time { get; }

    public string SocketPath { get; }

    public string Endpoint => "unix://" + SocketPath;

    public string SpiffeId { get; set; }

    /// <summary>While set, every call is accepted and never answered (an agent that hangs).</summary>
    public bool Hang { get; set; }

    /// <summary>
    /// While set, new X.509-SVIDs are issued by an intermediate CA (itself issued by <see cref="Ca"/>)
    /// and sent with it, as SPIRE does under an upstream authority; the bundle stays the root.
    /// </summary>
    public bool IssueUnderIntermediate { get; set; }

    /// <summary>How long each new JWT-SVID is valid.</summary>
    public TimeSpan JwtLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The CA of the trust domain (the X.509 bundle).</summary>
    public X509Certificate2 Ca { get; }

    /// <summary>Every JWT-SVID issued, for the leak scan.</summary>
    public ConcurrentQueue<string> IssuedJwts { get; } = new();

    /// <summary>Every private key issued (PKCS#8 PEM), for the leak scan.</summary>
    public ConcurrentQueue<string> IssuedKeys { get; } = new();

    /// <summary>Audiences JWT-SVIDs were asked for, in order.</summary>
    public ConcurrentQueue<string> Audiences { get; } = new();

    /// <summary>Calls refused for lack of the security metadata.</summary>
    public int RefusedCalls => _refused;

    /// <summary>The X.509-SVID streams currently open.</summary>
    public int OpenX509Streams => _openStreams;

    /// <summary>The thumbprint of the X.509-SVID currently served.</summary>
    public string CurrentX509Thumbprint
    {
        get
        {
            lock (_gate)
            {
                return _x509.Leaf.Thumbprint;
            }
        }
    }

    private int _refused;
    private int _openStreams;

    public static async Task<FakeWorkloadApi> StartAsync(TimeProvider time)
    {
        var api = new FakeWorkloadApi(time);
        await api.StartAsync();
        return api;
    }

    public async Task StartAsync()
    {
        File.Delete(SocketPath);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(this);
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(SocketPath, l => l.Protocols = HttpProtocols.Http2));
        var app = builder.Build();
        app.MapGrpcService<Service>();
        await app.StartAsync();
        _app = app;
    }

    /// <summary>The agent goes away: open streams end and the socket is gone.</summary>
    public async Task StopAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            // No graceful drain: an agent that goes away cuts its streams.
            using var now = new CancellationTokenSource();
            await now.CancelAsync();
            await app.StopAsync(now.Token);
            await app.DisposeAsync();
        }

        File.Delete(SocketPath);
    }

    /// <summary>Issues a new X.509-SVID (valid for <paramref name="lifetime"/>) and streams it to every open FetchX509SVID call.</summary>
    public string RotateX509(TimeSpan? lifetime = null, string? spiffeId = null)
    {
        TaskCompletionSource rotated;
        string thumbprint;
        lock (_gate)
        {
            _x509 = IssueX509(spiffeId ?? SpiffeId, lifetime ?? TimeSpan.FromHours(1));
            thumbprint = _x509.Leaf.Thumbprint;
            rotated = _rotated;
            _rotated = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        rotated.TrySetResult();
        return thumbprint;
    }

    /// <summary>
    /// A server certificate for an upstream in the trust domain: a URI SAN with <paramref name="spiffeId"/>,
    /// no DNS name. With <paramref name="asCa"/> it is a CA certificate (cA=true, keyCertSign, cRLSign),
    /// which the X509-SVID profile forbids for a leaf.
    /// </summary>
    public X509Certificate2 IssueServer(string spiffeId, bool asCa = false)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("O=SPIRE", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddUri(new Uri(spiffeId));
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        if (asCa)
        {
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        }

        using var signed = request.Create(Ca, Time.GetUtcNow().AddHours(-1), Time.GetUtcNow().AddDays(1), RandomNumberGenerator.GetBytes(12));
        using var withKey = signed.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    private X509Material IssueX509(string spiffeId, TimeSpan lifetime)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("O=SPIRE", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddUri(new Uri(spiffeId));
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var now = Time.GetUtcNow();
        // Valid from an hour back: tests move the proxy's clock ahead, the upstream checks with the real one.
        var issuer = IssueUnderIntermediate ? Intermediate() : Ca;
        var leaf = request.Create(issuer, now.AddHours(-1), now + lifetime, RandomNumberGenerator.GetBytes(12));
        var pkcs8 = key.ExportPkcs8PrivateKey();
        IssuedKeys.Enqueue(key.ExportPkcs8PrivateKeyPem());
        IssuedKeys.Enqueue(Convert.ToBase64String(pkcs8));
        byte[] chain = IssueUnderIntermediate ? [.. leaf.RawData, .. issuer.RawData] : leaf.RawData;
        return new X509Material(spiffeId, leaf, pkcs8, chain);
    }

    /// <summary>The intermediate CA (with its key), issued by the root once.</summary>
    private X509Certificate2 Intermediate()
    {
        lock (_gate)
        {
            if (_intermediate is null)
            {
                var request = new CertificateRequest("CN=Fake SPIRE intermediate CA, O=" + TrustDomain, _intermediateKey, HashAlgorithmName.SHA256);
                request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
                request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
                var san = new SubjectAlternativeNameBuilder();
                san.AddUri(new Uri(TrustDomainId));
                request.CertificateExtensions.Add(san.Build());
                using var signed = request.Create(Ca, Time.GetUtcNow().AddDays(-1), Time.GetUtcNow().AddDays(10), RandomNumberGenerator.GetBytes(12));
                _intermediate = signed.CopyWithPrivateKey(_intermediateKey);
            }

            return _intermediate;
        }
    }

    private string IssueJwt(string audience)
    {
        var now = Time.GetUtcNow();
        var claims = new JsonObject
        {
            ["sub"] = SpiffeId,
            ["aud"] = audience,
            ["iat"] = now.ToUnixTimeSeconds(),
            ["exp"] = (now + JwtLifetime).ToUnixTimeSeconds(),
        };
        var token = new JsonWebTokenHandler().CreateToken(claims.ToJsonString(), new SigningCredentials(new ECDsaSecurityKey(_jwtKey) { KeyId = _kid }, SecurityAlgorithms.EcdsaSha256));
        IssuedJwts.Enqueue(token);
        Audiences.Enqueue(audience);
        return token;
    }

    private ByteString JwtBundle()
    {
        var parameters = _jwtKey.ExportParameters(false);
        var jwks = new JsonObject
        {
            ["keys"] = new JsonArray(new JsonObject
            {
                ["kty"] = "EC",
                ["crv"] = "P-256",
                ["use"] = "jwt-svid",
                ["kid"] = _kid,
                ["x"] = Base64UrlEncoder.Encode(parameters.Q.X),
                ["y"] = Base64UrlEncoder.Encode(parameters.Q.Y),
            }),
        };
        return ByteString.CopyFromUtf8(jwks.ToJsonString());
    }

    private async Task AuthorizeAsync(ServerCallContext context)
    {
        if (Hang)
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        }

        // Workload API specification section 6.2: calls without the header are refused.
        if (context.RequestHeaders.GetValue("workload.spiffe.io") != "true")
        {
            Interlocked.Increment(ref _refused);
            throw new RpcException(new Status(StatusCode.InvalidArgument, "security header missing from request"));
        }
    }

    private (X509Material Material, Task Rotated) Current()
    {
        lock (_gate)
        {
            return (_x509, _rotated.Task);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _jwtKey.Dispose();
        _caKey.Dispose();
        _intermediateKey.Dispose();
        _intermediate?.Dispose();
        Ca.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>An issued SVID; <paramref name="Chain"/> is the DER sent as x509_svid (the leaf, then any intermediate).</summary>
    private sealed record X509Material(string SpiffeId, X509Certificate2 Leaf, byte[] Key, byte[] Chain);

    private sealed class Service : SpiffeWorkloadAPI.SpiffeWorkloadAPIBase
    {
        private readonly FakeWorkloadApi _api;

        public Service(FakeWorkloadApi api)
        {
            _api = api;
        }

        public override async Task<JWTSVIDResponse> FetchJWTSVID(JWTSVIDRequest request, ServerCallContext context)
        {
            await _api.AuthorizeAsync(context);
            if (request.Audience.Count == 0)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, "audience must be specified"));
            }

            var response = new JWTSVIDResponse();
            response.Svids.Add(new JWTSVID { SpiffeId = _api.SpiffeId, Svid = _api.IssueJwt(request.Audience[0]) });
            return response;
        }

        public override async Task FetchJWTBundles(JWTBundlesRequest request, IServerStreamWriter<JWTBundlesResponse> responseStream, ServerCallContext context)
        {
            await _api.AuthorizeAsync(context);
            var response = new JWTBundlesResponse();
            response.Bundles.Add(TrustDomainId, _api.JwtBundle());
            await responseStream.WriteAsync(response);
            await WaitForEnd(context);
        }

        public override async Task FetchX509SVID(X509SVIDRequest request, IServerStreamWriter<X509SVIDResponse> responseStream, ServerCallContext context)
        {
            await _api.AuthorizeAsync(context);
            Interlocked.Increment(ref _api._openStreams);
            try
            {
                while (!context.CancellationToken.IsCancellationRequested)
                {
                    var (material, rotated) = _api.Current();
                    var response = new X509SVIDResponse();
                    response.Svids.Add(new X509SVID
                    {
                        SpiffeId = material.SpiffeId,
                        X509Svid = ByteString.CopyFrom(material.Chain),
                        X509SvidKey = ByteString.CopyFrom(material.Key),
                        Bundle = ByteString.CopyFrom(_api.Ca.RawData),
                    });
                    await responseStream.WriteAsync(response);
                    await rotated.WaitAsync(context.CancellationToken);
                }
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                Interlocked.Decrement(ref _api._openStreams);
            }
        }

        public override async Task FetchX509Bundles(X509BundlesRequest request, IServerStreamWriter<X509BundlesResponse> responseStream, ServerCallContext context)
        {
            await _api.AuthorizeAsync(context);
            var response = new X509BundlesResponse();
            response.Bundles.Add(TrustDomainId, ByteString.CopyFrom(_api.Ca.RawData));
            await responseStream.WriteAsync(response);
            await WaitForEnd(context);
        }

        public override async Task<ValidateJWTSVIDResponse> ValidateJWTSVID(ValidateJWTSVIDRequest request, ServerCallContext context)
        {
            await _api.AuthorizeAsync(context);
            throw new RpcException(new Status(StatusCode.Unimplemented, "not served by the fake"));
        }

        private static async Task WaitForEnd(ServerCallContext context)
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }
}
