using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using SecretlessProxy.Attestation;
using SecretlessProxy.Configuration;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Admin;

/// <summary>
/// Decides whether a state-changing admin call (reload, revoke) may run: the caller presents the
/// token from <c>Admin:TokenFile</c> as a bearer token, or is a Unix-socket peer whose uid is in
/// <c>Admin:AllowedUids</c>. With neither configured nothing is accepted (fail closed): being on
/// loopback proves nothing in a pod, where every container shares it.
/// </summary>
internal sealed partial class AdminAuthorizer
{
    private const string TokenKey = SecretlessProxyOptions.SectionName + ":Admin:TokenFile";
    private const string UidsKey = SecretlessProxyOptions.SectionName + ":Admin:AllowedUids";
    private const string UrlKey = SecretlessProxyOptions.SectionName + ":Admin:Url";

    private readonly ILogger<AdminAuthorizer> _logger;

    public AdminAuthorizer(ILogger<AdminAuthorizer> logger)
    {
        _logger = logger;
    }

    /// <summary>Null when the call may run; otherwise what to answer. Logs either way.</summary>
    public async Task<AdminRefusal?> AuthorizeAsync(HttpContext context, AdminSettings settings)
    {
        var refusal = await DecideAsync(context, settings).ConfigureAwait(false);
        if (refusal is null)
        {
            return null;
        }

        Log.Refused(_logger, context.Request.Method, context.Request.Path.Value ?? string.Empty, Describe(context, settings), refusal.Reason);
        return refusal;
    }

    private async Task<AdminRefusal?> DecideAsync(HttpContext context, AdminSettings settings)
    {
        var peerUid = settings.AllowedUids.Count > 0 && settings.EndPoint is UnixDomainSocketEndPoint
            ? context.Features.Get<CallerFeature>()?.Caller.Uid
            : null;
        if (peerUid is { } uid && settings.AllowedUids.Contains(uid))
        {
            Log.Authorized(_logger, context.Request.Method, context.Request.Path.Value ?? string.Empty, Describe(context, settings), "peer uid in AllowedUids");
            return null;
        }

        if (settings.TokenFile is null)
        {
            return settings.AllowedUids.Count > 0
                ? new AdminRefusal(StatusCodes.Status403Forbidden, "admin-peer-not-allowed", "Admin caller not allowed",
                    "state-changing admin calls are accepted from the peer uids in " + UidsKey + "; this connection's peer uid is " + (peerUid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"),
                    Challenge: false, "peer uid " + (peerUid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown") + " not in AllowedUids")
                : new AdminRefusal(StatusCodes.Status403Forbidden, "admin-changes-disabled", "State-changing admin calls are disabled",
                    "POST /reload and POST /credentials/{name}/revoke need an admin token or an allowed peer: set " + TokenKey +
                    " to a file holding a token and send 'Authorization: Bearer <token>', or bind " + UrlKey + " to a unix: socket and list the callers' uids in " + UidsKey,
                    Challenge: false, "neither TokenFile nor AllowedUids is configured");
        }

        if (!TryGetBearer(context.Request, out var presented))
        {
            return new AdminRefusal(StatusCodes.Status401Unauthorized, "admin-token-required", "Admin token required",
                "send 'Authorization: Bearer <token>' with the token held in the file " + TokenKey + " names", Challenge: true, "no bearer token");
        }

        string expected;
        try
        {
            // Read at every call: rewriting the file (or a Secret volume's symlink swap) rotates the
            // token at once, with nothing cached to go stale.
            expected = (await File.ReadAllTextAsync(settings.TokenFile, context.RequestAborted).ConfigureAwait(false)).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.TokenUnavailable(_logger, settings.TokenFile, ex.GetType().Name);
            return TokenUnavailable("the admin token file could not be read");
        }

        if (expected.Length == 0)
        {
            Log.TokenUnavailable(_logger, settings.TokenFile, "empty");
            return TokenUnavailable("the admin token file is empty");
        }

        if (!FixedTimeEquals(presented, expected))
        {
            return new AdminRefusal(StatusCodes.Status401Unauthorized, "admin-token-invalid", "Admin token not accepted",
                "the bearer token is not the one in the file " + TokenKey + " names", Challenge: true, "bearer token does not match");
        }

        Log.Authorized(_logger, context.Request.Method, context.Request.Path.Value ?? string.Empty, Describe(context, settings), "admin token");
        return null;
    }

    private static AdminRefusal TokenUnavailable(string why) =>
        new(StatusCodes.Status503ServiceUnavailable, "admin-token-unavailable", "Admin token unavailable", why + " (" + TokenKey + "); no state-changing call is accepted until it holds a token", Challenge: false, why);

    /// <summary>RFC 6750 section 2.1: <c>Bearer</c> (any case), one space, the token; exactly one such header.</summary>
    private static bool TryGetBearer(HttpRequest request, out string token)
    {
        token = string.Empty;
        var values = request.Headers.Authorization;
        if (values.Count != 1 || values[0] is not { } value || !value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        token = value["Bearer ".Length..].Trim();
        return token.Length > 0;
    }

    /// <summary>
    /// Compares digests, not the strings: <see cref="CryptographicOperations.FixedTimeEquals"/> returns
    /// early on a length difference, and the digests' length is fixed.
    /// </summary>
    private static bool FixedTimeEquals(string presented, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));

    private static string Describe(HttpContext context, AdminSettings settings) =>
        context.Connection.RemoteIpAddress is { } remote ? remote.ToString()
        : settings.EndPoint is UnixDomainSocketEndPoint && context.Features.Get<CallerFeature>()?.Caller is { IsKnown: true } caller ? "unix socket, " + caller
        : "unix socket";

    private static partial class Log
    {
        [LoggerMessage(EventIds.AdminCallAuthorized, LogLevel.Information, "Admin {Method} {Path} from {Remote} accepted: {How}")]
        public static partial void Authorized(ILogger logger, string method, string path, string remote, string how);

        [LoggerMessage(EventIds.AdminCallRefused, LogLevel.Warning, "Admin {Method} {Path} from {Remote} refused: {Reason}")]
        public static partial void Refused(ILogger logger, string method, string path, string remote, string reason);

        [LoggerMessage(EventIds.AdminTokenUnavailable, LogLevel.Error, "The admin token file {TokenFile} cannot be used ({Problem}): no state-changing admin call is accepted")]
        public static partial void TokenUnavailable(ILogger logger, string tokenFile, string problem);
    }
}
