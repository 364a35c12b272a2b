using SecretlessProxy.Core;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Configuration;

/// <summary>
/// What a valid configuration still risks on the way to its issuers: a loopback issuer reached
/// with <c>AllowLoopbackSquatting</c>, and plain http over the network. Printed by <c>validate</c>
/// and logged when a configuration is applied (start, reload).
/// </summary>
internal static partial class IssuerEndpointWarnings
{
    public static IReadOnlyList<ConfigError> Of(ProxySnapshot snapshot)
    {
        var warnings = new List<ConfigError>();
        foreach (var endpoint in snapshot.IssuerEndpoints)
        {
            if (endpoint.LoopbackSquattingAccepted)
            {
                warnings.Add(new(endpoint.Key, SquattingMessage(endpoint)));
            }

            if (endpoint.IsPlainHttpOverNetwork)
            {
                warnings.Add(new(endpoint.Key, PlainHttpMessage(endpoint)));
            }
        }

        return warnings;
    }

    public static void Log(ILogger logger, ProxySnapshot snapshot)
    {
        foreach (var endpoint in snapshot.IssuerEndpoints)
        {
            if (endpoint.LoopbackSquattingAccepted)
            {
                LogSquatting(logger, endpoint.Key, Display(endpoint.Url), endpoint.Carries);
            }

            if (endpoint.IsPlainHttpOverNetwork)
            {
                LogPlainHttp(logger, endpoint.Key, Display(endpoint.Url), endpoint.Carries);
            }
        }
    }

    private static string SquattingMessage(IssuerEndpoint endpoint) =>
        "AllowLoopbackSquatting: any local process that binds " + endpoint.Url.Authority + " before the issuer (the app's too) receives " + endpoint.Carries +
        "; use UnixSocket or PinnedCertificateSha256 instead";

    private static string PlainHttpMessage(IssuerEndpoint endpoint) =>
        "plain http: the proxy sends " + endpoint.Carries + " unencrypted to " + endpoint.Url.Authority + ", where anyone on the path can read the request or answer in the issuer's place; use https";

    /// <summary>Scheme, host, port and path: no user info or query.</summary>
    private static string Display(Uri url) => url.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped);

    [LoggerMessage(EventIds.IssuerLoopbackSquattingAccepted, LogLevel.Warning, "{Key}: {IssuerUrl} is reached over loopback TCP with AllowLoopbackSquatting: any local process that binds the port before the issuer receives {Carries}")]
    private static partial void LogSquatting(ILogger logger, string key, string issuerUrl, string carries);

    [LoggerMessage(EventIds.IssuerPlainHttp, LogLevel.Warning, "{Key}: {IssuerUrl} is plain http over the network: the proxy sends {Carries} to it unencrypted")]
    private static partial void LogPlainHttp(ILogger logger, string key, string issuerUrl, string carries);
}
