using System.Net;

namespace SecretlessProxy.Core;

/// <summary>
/// How an issuer URL may be reached (<see cref="IssuerEndpoint"/>): the three keys that sit beside
/// every issuer URL, for credentials and for the workload identity's signing keys alike.
/// </summary>
internal static class IssuerEndpointRules
{
    public const string Keys = "UnixSocket, PinnedCertificateSha256 or AllowLoopbackSquatting";

    /// <summary>
    /// Checks how an issuer URL is reached. On loopback, a port belongs to whichever local process
    /// binds it first, the app's included: the request then goes to the app with
    /// <paramref name="carries"/>. So a loopback URL needs a Unix socket, a pinned certificate, or
    /// an opt-in whose name says what it accepts.
    /// </summary>
    /// <param name="key">The section (<c>SecretlessProxy:Credentials:orders</c>), where the three keys live.</param>
    /// <param name="urlKey">The URL's own key (<c>TokenUrl</c>).</param>
    public static IssuerEndpoint? Compile(string key, string urlKey, Uri url, string? unixSocket, string[]? pins, bool? allowSquatting, string carries, List<ConfigError> errors)
    {
        var start = errors.Count;
        if (unixSocket is not null)
        {
            if (unixSocket.Length == 0 || unixSocket[0] != '/')
            {
                errors.Add(new(key + ":UnixSocket", "'" + unixSocket + "' is not an absolute socket path, e.g. /run/issuer/issuer.sock"));
            }
            else if (System.Text.Encoding.UTF8.GetByteCount(unixSocket) > 107)
            {
                // sun_path is 108 bytes on Linux, including the terminating NUL.
                errors.Add(new(key + ":UnixSocket", "the socket path is longer than the 107 bytes a Unix socket address can hold"));
            }
        }

        var pinned = new List<byte[]>();
        if (pins is not null)
        {
            if (pins.Length == 0)
            {
                errors.Add(new(key + ":PinnedCertificateSha256", "give at least one fingerprint, or leave the key out"));
            }

            for (var i = 0; i < pins.Length; i++)
            {
                var hex = (pins[i] ?? string.Empty).Replace(":", string.Empty, StringComparison.Ordinal);
                if (hex.Length != 64 || !hex.All(char.IsAsciiHexDigit))
                {
                    errors.Add(new(key + ":PinnedCertificateSha256:" + i, "is not a SHA-256 fingerprint (64 hex digits, colons allowed), as `openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints"));
                }
                else
                {
                    pinned.Add(Convert.FromHexString(hex));
                }
            }

            if (url.Scheme != Uri.UriSchemeHttps)
            {
                errors.Add(new(key + ":PinnedCertificateSha256", "applies to https only: " + urlKey + " is plain http, which has no certificate to pin"));
            }
        }

        var squatting = allowSquatting == true;
        if (squatting && (unixSocket is not null || pins is not null))
        {
            errors.Add(new(key + ":AllowLoopbackSquatting", "is not needed with " + (unixSocket is not null ? "UnixSocket" : "PinnedCertificateSha256") + ", which no other process can stand in for; remove it"));
        }
        else if (squatting && IPAddress.TryParse(url.IdnHost.Trim('[', ']'), out var literal) && !Loopback.IsLocalAddress(literal))
        {
            errors.Add(new(key + ":AllowLoopbackSquatting", "applies to an issuer on this host only: " + urlKey + " names " + literal));
        }

        if (Loopback.IsLoopbackHost(url) && unixSocket is null && pins is null && !squatting)
        {
            errors.Add(new(
                key + ":" + urlKey,
                "'" + ConfigChecks.WithoutUserInfo(url.OriginalString) + "' is on loopback, where any local process (the app's too) can bind the port first and receive " + carries +
                ". Reach it through UnixSocket (a socket path only the issuer can create), pin its certificate with PinnedCertificateSha256 (https), or set AllowLoopbackSquatting: true to accept that risk"));
        }

        return errors.Count > start ? null : new IssuerEndpoint(key + ":" + urlKey, url, carries, unixSocket, pinned, squatting);
    }
}
