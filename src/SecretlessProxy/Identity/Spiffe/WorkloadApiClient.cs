using System.Net.Sockets;
using Grpc.Core;
using Grpc.Net.Client;
using SecretlessProxy.Core;
using SecretlessProxy.Identity.Spiffe.WorkloadApi;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// A gRPC client of the SPIFFE Workload API on a Unix socket. Every call carries the
/// <c>workload.spiffe.io: true</c> metadata the Workload API specification requires (section 6.2).
/// Failures become <see cref="WorkloadApiException"/>s whose messages name the socket and the
/// gRPC status, never anything the agent sent back besides its status detail.
/// </summary>
internal sealed class WorkloadApiClient : IDisposable
{
    /// <summary>The metadata key every Workload API call must carry; a server refuses calls without it.</summary>
    public const string SecurityHeader = "workload.spiffe.io";

    /// <summary>How long a unary call (a JWT-SVID, the first bundle message) may take by default.</summary>
    internal static readonly TimeSpan DefaultCallTimeout = TimeSpan.FromSeconds(10);

    private const int MaxMessageBytes = 4 * 1024 * 1024;

    private readonly GrpcChannel _channel;
    private readonly SpiffeWorkloadAPI.SpiffeWorkloadAPIClient _client;
    private readonly Metadata _headers = new() { { SecurityHeader, "true" } };

    public WorkloadApiClient(string socketPath, TimeSpan? callTimeout = null)
    {
        SocketPath = socketPath;
        CallTimeout = callTimeout ?? DefaultCallTimeout;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            UseProxy = false,
            // A streamed SVID call lives as long as the proxy: pings find an agent that stopped
            // answering (hung, or its socket replaced) instead of waiting on a dead connection.
            KeepAlivePingDelay = TimeSpan.FromSeconds(20),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            ConnectTimeout = CallTimeout,
        };

        // The authority is never resolved: the connect callback goes to the socket.
        _channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = MaxMessageBytes,
        });
        _client = new SpiffeWorkloadAPI.SpiffeWorkloadAPIClient(_channel);
    }

    public string SocketPath { get; }

    /// <summary>How long a unary call may take: an agent that stops answering is a failure, not a hang.</summary>
    public TimeSpan CallTimeout { get; }

    public string Display => SpiffeEndpoint.Display(SocketPath);

    /// <summary>JWT-SVIDs for <paramref name="audience"/> (and <paramref name="spiffeId"/> when given).</summary>
    public async Task<JWTSVIDResponse> FetchJwtSvidAsync(string audience, string? spiffeId, CancellationToken cancellationToken)
    {
        var request = new JWTSVIDRequest { SpiffeId = spiffeId ?? string.Empty };
        request.Audience.Add(audience);
        try
        {
            return await _client.FetchJWTSVIDAsync(request, Options(cancellationToken, deadline: true)).ConfigureAwait(false);
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw Failure("FetchJWTSVID", ex);
        }
    }

    /// <summary>The current JWT bundles: the first message of the FetchJWTBundles stream.</summary>
    public async Task<JWTBundlesResponse> FetchJwtBundlesAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var call = _client.FetchJWTBundles(new JWTBundlesRequest(), Options(cancellationToken, deadline: true));
            if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
            {
                throw new WorkloadApiException("the SPIFFE Workload API at " + Display + " ended FetchJWTBundles without sending a bundle");
            }

            return call.ResponseStream.Current;
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw Failure("FetchJWTBundles", ex);
        }
    }

    /// <summary>The FetchX509SVID stream (no deadline: it lasts until the caller cancels).</summary>
    public AsyncServerStreamingCall<X509SVIDResponse> StreamX509Svids(CancellationToken cancellationToken) =>
        _client.FetchX509SVID(new X509SVIDRequest(), Options(cancellationToken, deadline: false));

    /// <summary>The FetchX509Bundles stream (no deadline).</summary>
    public AsyncServerStreamingCall<X509BundlesResponse> StreamX509Bundles(CancellationToken cancellationToken) =>
        _client.FetchX509Bundles(new X509BundlesRequest(), Options(cancellationToken, deadline: false));

    /// <summary>A gRPC failure of <paramref name="method"/> in words fit for a 503 and the log.</summary>
    public WorkloadApiException Failure(string method, RpcException ex)
    {
        var what = ex.StatusCode switch
        {
            StatusCode.Unavailable => "is unavailable (" + ConnectReason(ex) + ")",
            StatusCode.DeadlineExceeded => "did not answer " + method + " within " + CallTimeout.TotalSeconds + " s",
            StatusCode.PermissionDenied => "refused " + method + " (PermissionDenied: " + Printable(ex.Status.Detail) + "): no identity is registered for this workload",
            _ => "failed " + method + " (" + ex.StatusCode + ": " + Printable(ex.Status.Detail) + ")",
        };
        return new WorkloadApiException("the SPIFFE Workload API at " + Display + " " + what, ex.StatusCode);
    }

    private CallOptions Options(CancellationToken cancellationToken, bool deadline) =>
        new(_headers, deadline ? DateTime.UtcNow + CallTimeout : null, cancellationToken);

    private static string ConnectReason(RpcException ex) =>
        ExceptionChain.Find<SocketException>(ex.Status.DebugException ?? ex) is { } socket
            ? socket.SocketErrorCode switch
            {
                SocketError.AddressNotAvailable or SocketError.AddressFamilyNotSupported => "no socket at that path",
                SocketError.ConnectionRefused => "nothing listens on the socket",
                SocketError.AccessDenied => "the proxy may not open the socket",
                var code => code.ToString(),
            }
            : ex.Status.DebugException is { } debug ? debug.GetType().Name : "connection failed";

    /// <summary>The agent's status detail, bounded and without control characters (it reaches logs and 503 bodies).</summary>
    internal static string Printable(string? value)
    {
        const int Max = 200;
        if (string.IsNullOrEmpty(value))
        {
            return "no detail";
        }

        var chars = value.AsSpan(0, Math.Min(value.Length, Max)).ToArray();
        for (var i = 0; i < chars.Length; i++)
        {
            if (char.IsControl(chars[i]))
            {
                chars[i] = '?';
            }
        }

        return new string(chars) + (value.Length > Max ? "..." : string.Empty);
    }

    public void Dispose() => _channel.Dispose();
}
