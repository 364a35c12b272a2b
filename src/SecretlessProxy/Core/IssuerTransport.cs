using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Core;

/// <summary>
/// Builds the HTTP transport for requests to issuers (<see cref="IssuerEndpoint"/>): no redirects
/// (a secret must not follow one), no environment proxy (in <c>run --</c> mode HTTP_PROXY may point
/// at this very process), no cookies. The shared transport refuses any connection that would land
/// on this host; an endpoint configured for loopback gets its own: a Unix socket, TLS accepted only
/// with a pinned certificate, or (opted in) a plain loopback connection.
/// </summary>
internal static class IssuerTransport
{
    /// <summary>The shared transport for issuers on the network; <paramref name="extraTrust"/> adds CAs to the system store.</summary>
    public static SocketsHttpHandler CreateHandler(X509Certificate2Collection? extraTrust = null) => CreateHandler(null, extraTrust);

    /// <summary>A transport for <paramref name="endpoint"/> (null: the shared one, loopback refused).</summary>
    /// <param name="hostProvided">
    /// The endpoint is named by the host platform's environment, not by this configuration (Azure's
    /// IDENTITY_ENDPOINT, which App Service and Arc put on localhost): it is used as given.
    /// </param>
    public static SocketsHttpHandler CreateHandler(IssuerEndpoint? endpoint, X509Certificate2Collection? extraTrust, bool hostProvided = false)
    {
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.All,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            ActivityHeadersPropagator = DistributedContextPropagator.Current,
        };

        if (endpoint?.UnixSocket is { } path)
        {
            var socketEndPoint = new UnixDomainSocketEndPoint(path);
            handler.ConnectCallback = (_, cancellationToken) => ConnectUnixAsync(socketEndPoint, cancellationToken);
        }
        else if (!hostProvided && (endpoint is null || !(endpoint.LoopbackSquattingAccepted || endpoint.PinnedCertificates.Count > 0)))
        {
            handler.ConnectCallback = ConnectRefusingLoopbackAsync;
        }

        if (endpoint is { PinnedCertificates.Count: > 0 })
        {
            // The pin replaces chain and name validation: a self-signed issuer certificate is the
            // usual case on loopback, and only the holder of that certificate's key can complete the
            // handshake, which happens before a byte of the request is sent.
            var pins = endpoint.PinnedCertificates;
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => MatchesPin(certificate, pins);
        }
        else if (extraTrust is not null)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => ExtraTrust.Validate(extraTrust, certificate, chain, errors);
        }

        return handler;
    }

    /// <summary><paramref name="shared"/> when the endpoint needs nothing special, else an invoker of its own.</summary>
    public static HttpMessageInvoker InvokerFor(IssuerEndpoint endpoint, HttpMessageInvoker shared) =>
        endpoint.NeedsOwnTransport ? new HttpMessageInvoker(CreateHandler(endpoint, null)) : shared;

    /// <summary>Why a request failed, fit for a credential's status: the refusal's own words, else the error kind.</summary>
    public static string Reason(HttpRequestException exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            if (e is IssuerConnectionRefusedException refused)
            {
                return refused.Message;
            }
        }

        return exception.HttpRequestError.ToString();
    }

    /// <summary>Whether the server's certificate is one of the pinned ones (SHA-256 of its DER encoding).</summary>
    internal static bool MatchesPin(X509Certificate? certificate, IReadOnlyList<byte[]> pins)
    {
        if (certificate is null)
        {
            return false;
        }

        var hash = SHA256.HashData(certificate.GetRawCertData());
        foreach (var pin in pins)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, pin))
            {
                return true;
            }
        }

        return false;
    }

    private static async ValueTask<Stream> ConnectUnixAsync(UnixDomainSocketEndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Resolves the host itself and connects only to addresses off this host. A name that resolves
    /// to loopback (an /etc/hosts entry, a pod's hostAliases) would otherwise reach whatever process
    /// bound that port first, past the check made on literal addresses at configuration time.
    /// </summary>
    private static async ValueTask<Stream> ConnectRefusingLoopbackAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal)
            ? new[] { literal }
            : await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        if (string.Equals(host.TrimEnd('.'), "localhost", StringComparison.OrdinalIgnoreCase) || addresses.Any(Loopback.IsLocalAddress))
        {
            throw new IssuerConnectionRefusedException(
                "refused to connect: " + host + " is on this host, where any local process could have bound port " + context.DnsEndPoint.Port +
                "; configure UnixSocket, PinnedCertificateSha256 or AllowLoopbackSquatting for this endpoint");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, context.DnsEndPoint.Port, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
